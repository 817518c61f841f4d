"""Translation with the Transformer (Vaswani et al. 2017) under any tf.distribute strategy: a shared subword
vocabulary, label-smoothed training with the paper's schedule, BLEU of beam-search output, checkpoint averaging,
and a TF Serving export.

    python recipes/transformer_translate.py                 # the embedded digits -> words task, minutes on a CPU
    python recipes/transformer_translate.py --dataset=wmt14_translate/de-en --source_language=en \
        --target_language=de --data_dir=~/tensorflow_datasets --model=transformer_base --vocab_size=37000 \
        --max_tokens_per_batch=25000 --train_steps=100000 --warmup_steps=4000 --max_length=256 \
        --checkpoint_every=1000 --average_checkpoints=5 --eval_every=5000 --strategy=mirrored \
        --mixed_precision=mixed_float16 --model_dir=runs/wmt14_base          # the paper's base setting
    python recipes/transformer_translate.py --source_files=train.pt --target_files=train.en \
        --validation_source_files=dev.pt --validation_target_files=dev.en --vocab_size=16000

Data: the embedded task (default: English sentences with numbers in digits -> the same with the numbers in
words, generated offline; see zoo.data.number_words), tensorflow-datasets translation datasets in --data_dir
(wmt14_translate/de-en, wmt_t2t_translate/de-en, ted_hrlr_translate/pt_to_en, ...; --source_language and
--target_language choose the direction), or parallel text files. One SentencePiece BPE vocabulary is trained on
both languages (or --vocab_file) and saved as <model_dir>/subword.model. Batches are --global_batch_size pairs,
or --max_tokens_per_batch tokens per side bucketed by length (the paper: ~25,000 source + ~25,000 target tokens,
i.e. --max_tokens_per_batch=25000).

Training: label-smoothed cross-entropy over real target tokens, Adam(0.9, 0.98, 1e-9) with
lr = --lr_scale · d_model^-0.5 · min(step^-0.5, step · warmup^-1.5). Every --eval_every steps and at the end:
validation loss, per-token NLL and accuracy, and sacreBLEU of beam-search output on --bleu_sentences validation
sentences, to TensorBoard. At the end the last --average_checkpoints checkpoints are averaged (the paper: 5 for
base, 20 for big), a table gives BLEU for greedy and beam search on the test split (else validation), with
example translations, and <export_dir>/<version>/ is written: `serving_default` takes source ids (EOS-terminated,
0-padded) and returns beam-search target ids, lengths and scores; `translate_greedy` decodes greedily;
assets/subword.model is the vocabulary. Stopped and started again with the same flags, a run resumes.
"""

from zoo import flags as zoo_flags
from zoo.flags import FREE, MODEL, Enum, Float, Int, List, String

MODELS = ("transformer_tiny", "transformer_base", "transformer_big")
_COMMON = zoo_flags.common(train_steps=1000, global_batch_size=64, model_dir="runs/transformer_translate",
                           checkpoint_every=100, log_every=100)
SPEC = zoo_flags.declare(
    *[p for p in _COMMON if p.name != "learning_rate"],  # the schedule below sets the rate
    Enum("model", "transformer_tiny", MODELS, "Preset: transformer_tiny (CPU), transformer_base or transformer_big."),
    Float("dropout", None, "P_drop on embeddings and residual branches (default: the preset's, 0.1; big 0.3).",
          role=MODEL, at_least=0, below=1),
    Float("label_smoothing", 0.1, "Label smoothing epsilon of the training loss (the paper: 0.1).", at_least=0,
          below=1),
    Float("lr_scale", 1.0, "Factor on the paper's rate d_model^-0.5 * min(step^-0.5, step * warmup^-1.5).",
          above=0),
    Int("warmup_steps", 500, "Warm-up steps of the schedule (the paper: 4000, over 100k steps; 500 suits the "
        "default 1000-step run).", at_least=1),
    Float("clip_norm", 0.0, "Clip the global gradient norm to this (0: off, as the paper).", at_least=0),
    String("dataset", "embedded", "embedded, or a tensorflow-datasets translation dataset in --data_dir, e.g. "
           "wmt14_translate/de-en or ted_hrlr_translate/pt_to_en."),
    String("source_language", None, "Source language code of --dataset (default: the config's first)."),
    String("target_language", None, "Target language code of --dataset (default: the config's second)."),
    List("source_files", None, "Parallel text files (paths or globs, one sentence per line): the sources."),
    List("target_files", None, "The targets, line for line with --source_files."),
    List("validation_source_files", None, "Validation sources (default: a hold-out of --source_files)."),
    List("validation_target_files", None, "Validation targets, line for line."),
    Float("validation_fraction", 0.01, "Share of --source_files held out when no validation files are given.",
          above=0, below=1),
    Int("vocab_size", None, "Pieces of the shared BPE vocabulary trained on the data (default: the dataset's "
        "suggestion; the paper: 37,000 for En-De).", at_least=5),
    Int("vocab_pairs", 1_000_000, "Training pairs (the first ones, both sides) the vocabulary is trained on; "
        "SentencePiece samples 2M sentences of them.", role=FREE, at_least=1),
    String("vocab_file", None, "A SentencePiece .model (ids pad 0, unk 1, BOS 2, EOS 3) instead of training one; "
           "copied to <model_dir>/subword.model (config.json keeps its SHA-1).", role=FREE),
    Int("max_length", 64, "Longest source or target in subword tokens, EOS included: longer training pairs are "
        "dropped, evaluation ones truncated (at most the model's max_sequence_length).", at_least=2),
    Int("max_tokens_per_batch", 0, "Tokens per side per step over all replicas, in length buckets (0: "
        "--global_batch_size pairs per step).", at_least=0),
    Int("beam_size", 4, "Beam width for BLEU, the final table and the export (the paper: 4).", role=FREE,
        at_least=1),
    Float("alpha", 0.6, "GNMT length penalty exponent ((5+|Y|)/6)^alpha (the paper: 0.6).", role=FREE, at_least=0),
    Int("extra_length", 50, "Decode at most source length + this many tokens (the paper: 50).", role=FREE,
        at_least=1),
    Int("average_checkpoints", 5, "Average the last N checkpoints before the final evaluation and export "
        "(0 or 1: the last weights).", role=FREE, at_least=0),
    Int("bleu_sentences", 200, "Validation sentences decoded for BLEU at each evaluation (0: no BLEU during "
        "training).", role=FREE, at_least=0),
    Int("final_sentences", 0, "Sentences of the final BLEU table (0: the whole test split, else validation).",
        role=FREE, at_least=0),
    Int("num_examples", 5, "Example translations printed at the end.", role=FREE, at_least=0),
    checks=[
        lambda hp: None if bool(hp.source_files) == bool(hp.target_files) else
        "give --source_files and --target_files together",
        lambda hp: None if bool(hp.validation_source_files) == bool(hp.validation_target_files) else
        "give --validation_source_files and --validation_target_files together",
    ],
)


def main(argv):
    del argv
    import os

    import keras

    from zoo import create_model, recipe_support
    from zoo.data import translation
    from zoo.errors import ZooError
    from zoo.models.transformer import Translator
    from zoo.models.transformer.translator_serving import serving_endpoints
    from zoo.recipe_support import translation as support
    from zoo.registry import trainable_params
    from zoo.training.checkpoint_average import average_checkpoints
    from zoo.training.export import export_saved_model
    from zoo.training.schedules import TransformerSchedule
    from zoo.training.trainer import Trainer

    hp = SPEC.values()
    strategy, chief = recipe_support.setup(hp)
    data = translation.open_translation(
        hp.dataset, source_language=hp.source_language, target_language=hp.target_language, data_dir=hp.data_dir,
        download=hp.download, source_files=hp.source_files, target_files=hp.target_files,
        validation_source_files=hp.validation_source_files, validation_target_files=hp.validation_target_files,
        validation_fraction=hp.validation_fraction)
    subwords = support.run_subword_model(hp.model_dir, data, vocab_file=hp.vocab_file,
                                         vocab_size=hp.vocab_size or data.vocab_size, chief=chief,
                                         max_sentences=hp.vocab_pairs)
    overrides = hp.model_args(vocabulary_size=subwords.vocabulary_size)
    if overrides.get("dropout") is None:
        overrides.pop("dropout", None)
    with strategy.scope():
        backbone = create_model(hp.model, **overrides)
        if hp.max_length > backbone.max_sequence_length:
            raise ZooError(f"--max_length={hp.max_length} exceeds {hp.model}'s max_sequence_length "
                           f"{backbone.max_sequence_length}; lower --max_length")
        model = Translator(backbone, label_smoothing=hp.label_smoothing, clip_norm=hp.clip_norm or None)
        schedule = TransformerSchedule(backbone.hidden_dim, hp.warmup_steps, scale=hp.lr_scale)
        model.compile(optimizer=keras.optimizers.Adam(schedule, beta_1=0.9, beta_2=0.98, epsilon=1e-9))
    eval_split = "test" if "test" in data.sizes else "validation"
    if chief:
        sizes = ", ".join(f"{n:,} {split}" for split, n in data.sizes.items() if n)
        print(f"{hp.model}: {trainable_params(backbone):,} parameters; {data.name} "
              f"({data.source_language} -> {data.target_language}): {sizes} pairs; shared vocabulary "
              f"{subwords.vocabulary_size:,} pieces; {strategy.num_replicas_in_sync} replica(s)", flush=True)

    batching = ({"max_tokens_per_batch": hp.max_tokens_per_batch} if hp.max_tokens_per_batch
                else {"global_batch_size": hp.global_batch_size})

    def dataset_fn(ctx):
        return translation.train_dataset(data, subwords, max_length=hp.max_length, input_context=ctx, seed=hp.seed,
                                         static_shapes=hp.jit_compile, **batching)

    def eval_dataset_fn(ctx):
        return translation.eval_dataset(data, subwords, global_batch_size=hp.global_batch_size,
                                        max_length=hp.max_length, input_context=ctx)

    decoding = dict(beam_size=hp.beam_size, alpha=hp.alpha, extra_length=hp.extra_length)
    extras = []
    if hp.bleu_sentences and chief:
        pairs = translation.eval_texts(data, "validation", limit=hp.bleu_sentences)
        sources = support.SourceBatches(subwords, [s for s, _ in pairs], max_length=hp.max_length,
                                        batch_size=hp.global_batch_size)
        extras.append(support.bleu_extra(model, subwords, sources, [t for _, t in pairs], **decoding))
    config = hp.run_config(vocabulary_size=subwords.vocabulary_size, vocab_sha1=subwords.sha1, dataset=data.name,
                           source_language=data.source_language, target_language=data.target_language)
    trainer = Trainer(model, strategy=strategy, model_dir=hp.model_dir, dataset_fn=dataset_fn, config=config,
                      eval_dataset_fn=eval_dataset_fn, eval_extras=extras,
                      max_to_keep=max(3, hp.average_checkpoints), learning_rate_flag="--lr_scale",
                      **hp.trainer_args())
    logs = trainer.train()
    if chief and logs.get("eval/bleu") is not None:
        print(f"validation BLEU (beam {hp.beam_size}, {hp.bleu_sentences} sentences) with the last weights: "
              f"{logs['eval/bleu']:.2f}", flush=True)
    if chief and hp.average_checkpoints > 1:
        steps = average_checkpoints(hp.model_dir, model, last_n=hp.average_checkpoints)
        print(f"averaged the checkpoints of steps {', '.join(map(str, steps))}", flush=True)
    if chief:
        pairs = translation.eval_texts(data, eval_split, limit=hp.final_sentences or None)
        sources = support.SourceBatches(subwords, [s for s, _ in pairs], max_length=hp.max_length,
                                        batch_size=hp.global_batch_size)
        table, texts = support.final_table(model, subwords, sources, [t for _, t in pairs], split=eval_split,
                                           **decoding)
        print("\n".join(table))
        for (source, reference), hypothesis in list(zip(pairs, texts))[:hp.num_examples]:
            print(f"  source:    {source}\n  reference: {reference}\n  output:    {hypothesis}")
    if hp.export_dir:
        subword_file = os.path.join(hp.model_dir, support.SUBWORD_FILE)
        if not chief:  # other workers write a throw-away export with a copy of the vocabulary
            import tempfile

            subword_file = os.path.join(tempfile.mkdtemp(prefix="zoo-subword-"), support.SUBWORD_FILE)
            subwords.save(subword_file)
        path = export_saved_model(hp.export_dir, backbone, serving_endpoints(model, **decoding),
                                  assets={support.SUBWORD_FILE: subword_file}, strategy=strategy)
        if chief:
            print(f"exported {path}", flush=True)


if __name__ == "__main__":
    zoo_flags.run(main)
