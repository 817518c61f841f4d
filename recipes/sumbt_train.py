"""SUMBT belief tracking (Lee et al. 2019) under any tf.distribute strategy: a fine-tuned utterance BERT, a frozen
BERT that encodes the ontology once, early stopping on dev joint goal accuracy, a test report and a TF Serving
export.

    python recipes/sumbt_train.py                        # embedded restaurant dialogues, tiny BERT, minutes on a CPU
    python recipes/sumbt_train.py --data_dir=SUMBT/data/woz --config=bert_base \
        --init_checkpoint=bert-base-uncased --learning_rate=5e-5 --global_batch_size=4 --max_label_length=7 \
        --train_steps=150000 --eval_every=500 --patience=15 --model_dir=runs/sumbt_woz   # the paper's WOZ 2.0 set-up
    python recipes/sumbt_train.py --data_dir=SUMBT/data/multiwoz --config=bert_base \
        --init_checkpoint=bert-base-uncased --learning_rate=1e-4 --global_batch_size=3 --unknown_values=none

Data (`zoo.data.dialogue_state`): `--data_dir` with train.tsv, dev.tsv, test.tsv and ontology.json (or WOZ's
ontology_dstc2_en.json) as SKTBrain/SUMBT ships them; without it, generated WOZ-like restaurant dialogues
(`zoo.data.restaurant_dialogues`) written in the same format to <model_dir>/data/. Each turn is `[CLS] user [SEP]
system [SEP]` (--max_seq_length); dialogues are padded to min(--max_turn_length, the longest) turns.

Encoders: --config names the BERT preset (bert_tiny by default). With --init_checkpoint (a Hugging Face BERT
directory, config.json + model.safetensors, or keras-hub BertBackbone weights) both the utterance encoder and the
frozen slot/value encoder start from it, as the original; its vocab.txt / spiece.model is used unless
--vocab_file. Without either, a WordPiece vocabulary (SentencePiece for kobert*) is trained on the training
dialogues. The run's vocabulary and ontology are kept in <model_dir>; config.json records their SHA-1s, that of
the three tsv files and the encoder's sizes, so a resume with other data or another encoder is refused.

Training: AdamW (weight decay 0.01 except biases and layer norms, as BertAdam) with linear warm-up over
--warmup_proportion of --train_steps then linear decay; dev evaluation every --eval_every steps; training stops
when dev joint accuracy has not improved for --patience evaluations (0: never), the best weights are restored,
and the whole test split is reported (joint, slot and per-slot accuracy, with the majority baseline), printed
and written to <model_dir>/test_results.json. (The original keeps the epoch of the lowest dev loss, patience in
epochs; here the dev joint accuracy decides, evaluated every --eval_every steps.) Without --init_checkpoint the
frozen encoder is the utterance encoder's random initialisation: its value vectors lie close together (about
0.2 apart at norm 11 for bert_tiny), so the loss stays near uniform while the accuracies still rise; the
default run (1,200 steps, about 4 minutes on 2 CPU cores, 1.3 GB peak RSS) keeps step 1,100 (dev joint 0.98)
and reaches test joint goal accuracy 0.94 (slot 0.98) against a majority baseline of 0.06 (slot 0.25). The
export's `serving_default` takes token_ids/segment_ids/padding_mask [batch, turns, seq] and returns per-slot
value ids and distances; assets: ontology.json (the label lists in id order) and the vocabulary. Stopped and
started again with the same flags, a run resumes.
"""

import dataclasses

from zoo import flags as zoo_flags
from zoo.flags import FREE, Bool, Enum, Float, Int, String
from zoo.recipe_support.sumbt import CONFIGS

_COMMON = [dataclasses.replace(p, default=100) if p.name == "eval_every" else p
           for p in zoo_flags.common(train_steps=1200, global_batch_size=8, learning_rate=1e-3,
                                     model_dir="runs/sumbt_train", checkpoint_every=100, log_every=50)
           if p.name != "data_dir"]
SPEC = zoo_flags.declare(
    *_COMMON,
    String("data_dir", None, "Directory with train.tsv, dev.tsv, test.tsv and ontology.json in the SUMBT format "
           "(WOZ 2.0 or MultiWOZ); default: the embedded restaurant dialogues.", role=FREE),
    Enum("unknown_values", "error", ("error", "none"), "Belief-state values not in the ontology: error (count and "
         "refuse) or none (map them to \"none\" as the original preprocessing, and report the count)."),
    Enum("config", "bert_tiny", CONFIGS, "BERT preset of both encoders (with --init_checkpoint: the checkpoint's "
         "own sizes)."),
    String("init_checkpoint", None, "Local BERT weights for both encoders: a Hugging Face directory (config.json + "
           "model.safetensors) or keras-hub BertBackbone weights.", role=FREE),
    String("vocab_file", None, "vocab.txt (WordPiece) or a SentencePiece .model; default: the one beside "
           "--init_checkpoint, else one trained on the training dialogues.", role=FREE),
    Int("vocab_size", 1000, "Size of the vocabulary trained when there is none (the dialogues may give fewer; "
        "config.json pins the vocabulary itself).", role=FREE, at_least=6),
    Int("max_seq_length", 64, "Tokens per turn, [CLS] user [SEP] system [SEP] (the original: 64).", at_least=4,
        at_most=512),
    Int("max_turn_length", 22, "Turns per dialogue at most (padded to the longest dialogue below this; the "
        "original: 22).", at_least=1),
    Int("max_label_length", 32, "Tokens of a slot name or value with [CLS] and [SEP] (the original: 32; WOZ "
        "run.sh: 7).", at_least=3, at_most=512),
    Int("hidden_dim", 300, "Units of the belief RNN (the paper: 300).", at_least=1),
    Int("num_heads", 4, "Heads of the slot-utterance attention (the paper: 4).", at_least=1),
    Enum("rnn", "gru", ("gru", "lstm"), "RNN over turns."),
    Bool("zero_init_rnn", False, "Start the RNN from zeros instead of a projection of the first turn."),
    Float("dropout", 0.1, "Dropout of the BERT encoder and of the belief tracker (the original: 0.1).",
          at_least=0, below=1),
    Float("warmup_proportion", 0.1, "Fraction of --train_steps of linear warm-up (the original: 0.1).",
          at_least=0, at_most=1),
    Float("weight_decay", 0.01, "AdamW weight decay, not on biases and layer norms (BertAdam: 0.01).", at_least=0),
    Float("clip_norm", 1.0, "Clip the global gradient norm to this (0: off; BertAdam clips each tensor at 1.0).",
          at_least=0),
    Int("patience", 10, "Stop when dev joint accuracy has not improved for this many evaluations (0: never; "
        "the best weights are still restored for the test report).", role=FREE, at_least=0),
)
NEVER = 2 ** 31 - 1  # the patience of --patience=0: more evaluations than any run makes


def main(argv):
    del argv
    import keras

    from zoo import recipe_support
    from zoo.data import dialogue_state
    from zoo.errors import ZooError
    from zoo.models.sumbt import SUMBT, encode_ontology
    from zoo.models.sumbt.sumbt_serving import serving_endpoints
    from zoo.recipe_support import sumbt as support
    from zoo.registry import trainable_params
    from zoo.training.early_stopping import EarlyStopping
    from zoo.training.export import export_saved_model
    from zoo.training.schedules import LinearWarmupDecay
    from zoo.training.trainer import Trainer

    hp = SPEC.values()
    strategy, chief = recipe_support.setup(hp)
    data = support.run_data(hp.model_dir, data_dir=hp.data_dir, unknown_values=hp.unknown_values, verbose=chief)
    vocab = support.run_vocabulary(hp.model_dir, data, vocab_file=hp.vocab_file, init_checkpoint=hp.init_checkpoint,
                                   config=hp.config, vocab_size=hp.vocab_size, chief=chief)
    turns = data.turn_length(hp.max_turn_length)
    arrays = {split: dialogue_state.encode_dialogues(data, split, vocab, max_seq_length=hp.max_seq_length,
                                                     max_turn_length=turns, verbose=chief)
              for split in dialogue_state.SPLITS}
    slot_inputs, value_inputs = dialogue_state.encode_ontology_inputs(data, vocab,
                                                                      max_label_length=hp.max_label_length)
    baseline = dialogue_state.majority_baseline(arrays["train"]["labels"], arrays["test"]["labels"])

    with strategy.scope():
        backbone, kwargs = support.make_encoders(hp.config, vocab, init_checkpoint=hp.init_checkpoint,
                                                 dropout=hp.dropout)
        for flag in ("max_seq_length", "max_label_length"):
            if hp[flag] > backbone.max_sequence_length:
                raise ZooError(f"--{flag}={hp[flag]} exceeds the encoder's position table "
                               f"({backbone.max_sequence_length} in {hp.init_checkpoint or hp.config}); lower --{flag}")
    frozen = support.frozen_copy(hp.config, kwargs, backbone, init_checkpoint=hp.init_checkpoint)
    slot_vectors, value_vectors, value_mask = encode_ontology(frozen, slot_inputs, value_inputs)
    del frozen
    with strategy.scope():
        model = SUMBT(backbone, slot_vectors, value_vectors, value_mask, num_heads=hp.num_heads, rnn=hp.rnn,
                      hidden_dim=hp.hidden_dim, zero_init_rnn=hp.zero_init_rnn, dropout=hp.dropout,
                      slot_names=data.slots, clip_norm=hp.clip_norm or None)
        schedule = LinearWarmupDecay(hp.learning_rate, hp.train_steps,
                                     warmup_steps=int(hp.warmup_proportion * hp.train_steps))
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=hp.weight_decay, epsilon=1e-6)
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
        model.compile(optimizer=optimizer)
    if chief:
        sizes = ", ".join(f"{n:,} {split} dialogues ({t:,} turns)" for split, (n, t) in data.sizes().items())
        print(f"{hp.config}: {trainable_params(model):,} trainable parameters; {sizes}; {len(data.slots)} slots, "
              f"{sum(map(len, data.labels))} values; {turns} turns x {hp.max_seq_length} tokens; vocabulary "
              f"{len(vocab):,} ({vocab.kind}); {strategy.num_replicas_in_sync} replica(s); majority baseline on "
              f"test: joint {baseline['joint_accuracy']:.4f}, slot {baseline['slot_accuracy']:.4f}", flush=True)

    pad = vocab.special_ids["pad"]

    def dataset_fn(ctx):
        return dialogue_state.train_dataset(arrays["train"], global_batch_size=hp.global_batch_size,
                                            input_context=ctx, seed=hp.seed)

    def eval_fn(split):
        def fn(ctx):
            return dialogue_state.eval_dataset(arrays[split], global_batch_size=hp.global_batch_size,
                                               input_context=ctx, pad_id=pad)
        return fn

    encoder = {k: v for k, v in kwargs.items() if k != "dropout"}  # with the checkpoint's sizes
    config = hp.run_config(vocab_sha1=vocab.sha1, encoder=encoder, ontology_sha1=data.sha1,
                           data_sha1=data.files_sha1, turns=turns,
                           dialogues={split: n for split, (n, _) in data.sizes().items()})
    stopping = EarlyStopping("joint_accuracy", patience=hp.patience or NEVER, mode="max")
    trainer = Trainer(model, strategy=strategy, model_dir=hp.model_dir, dataset_fn=dataset_fn, config=config,
                      eval_dataset_fn=eval_fn("dev"), early_stopping=stopping, **hp.trainer_args())
    logs = trainer.train()
    ontology_path = support.ontology_file(hp.model_dir, data, chief)  # after the config check
    trainer.restore_best()
    best = {"step": int(logs["best_step"]), "joint_accuracy": float(logs["best/joint_accuracy"])}
    if chief and logs.get("stopped_early"):
        print(f"stopped early: dev joint accuracy did not improve for {hp.patience} evaluations", flush=True)
    trainer.eval_steps = None  # --eval_steps shortens the dev evaluations only: the test report sees every dialogue
    results = trainer.evaluate(eval_fn("test"))
    if chief:
        print("\n".join(support.report_lines(results, data.slots, split="test", baseline=baseline, best=best)),
              flush=True)
        dev = {k.removeprefix("eval/"): v for k, v in logs.items() if k.startswith("eval/")}
        path = support.write_results(hp.model_dir, results, data.slots, baseline=baseline, best=best,
                                     extra={"dev_last": dev, "stopped_early": bool(logs.get("stopped_early"))})
        print(f"wrote {path}", flush=True)
    if hp.export_dir:
        assets = {support.ONTOLOGY_FILE: ontology_path,
                  vocab.file_name: support.vocabulary_file(hp.model_dir, vocab, chief)}
        path = export_saved_model(hp.export_dir, model, serving_endpoints(model), assets=assets, strategy=strategy)
        if chief:
            print(f"exported {path}", flush=True)


if __name__ == "__main__":
    zoo_flags.run(main)
