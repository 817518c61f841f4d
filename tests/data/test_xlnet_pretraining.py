"""XLNet pretraining batches: the original's stream, A/B layout, span masking, _local_perm, bi_data, replicas."""

import random

import numpy as np
import pytest
import tensorflow as tf

from zoo.data import text_sources, xlnet_permutation, xlnet_pretraining
from zoo.data.xlnet_permutation import local_perm, row_permutations, sample_mask, split_a_and_b
from zoo.data.xlnet_pretraining import create_layout, make_dataset_fn, replica_row_order
from zoo.data.xlnet_vocabulary import train_xlnet_vocabulary
from zoo.errors import ZooError

T, R, P = 32, 16, 6


@pytest.fixture(scope="module")
def corpus():
    documents = text_sources.load_documents()[:6]
    vocab = train_xlnet_vocabulary(text_sources.load_documents(), 400)
    return documents, vocab, xlnet_pretraining.token_stream(documents, vocab)


def layout_of(corpus, **options):
    documents, vocab, stream = corpus
    options = {"global_batch_size": 4, "seq_len": T, "reuse_len": R, "num_predict": P, **options}
    return create_layout(documents, vocab, stream=stream, **options)


def batches(dataset_fn, context, count):
    return [{k: v.numpy() for k, v in b.items()} for b in dataset_fn(context).take(count)]


def original_local_perm(inputs, is_masked, perm, perm_size, seq_len, sep, cls):
    """data_utils._local_perm in numpy, tf.random_shuffle replaced by the row order `perm`."""
    index = np.arange(seq_len).reshape(-1, perm_size).T
    index = index[perm]
    index = index.T.reshape(-1)
    non_func_tokens = ~((inputs == sep) | (inputs == cls))
    non_mask_tokens = ~is_masked & non_func_tokens
    masked_or_func_tokens = ~non_mask_tokens
    rev_index = np.where(non_mask_tokens, -1, index)
    target_tokens = masked_or_func_tokens & non_func_tokens
    self_rev_index = np.where(target_tokens, rev_index, rev_index + 1)
    perm_mask = (self_rev_index[:, None] <= rev_index[None, :]) & masked_or_func_tokens
    return perm_mask.astype(np.float32), target_tokens


def test_token_stream_as_the_original_reads_lines(corpus):
    documents, vocab, (ids, sent_ids) = corpus
    expected_ids, expected_sent, sent_id = [], [], True
    for line in [s for d in documents for s in d + [""]]:  # data_utils._create_data with use_eod
        if not line:
            sent_id = not sent_id
            cur = [7]
        else:
            cur = vocab.encode(line)
        expected_ids.extend(cur)
        expected_sent.extend([sent_id] * len(cur))
        sent_id = not sent_id
    assert ids.tolist() == expected_ids and sent_ids.tolist() == expected_sent
    assert (ids == 7).sum() == len(documents)


def test_sequence_layout_reuse_a_sep_b_sep_cls(corpus):
    layout = layout_of(corpus)
    assert layout.token_ids.shape == layout.segment_ids.shape == layout.is_masked.shape == (layout.steps, 4, T)
    ids, seg = layout.token_ids.reshape(-1, T), layout.segment_ids.reshape(-1, T)
    assert (ids[:, -1] == 3).all() and (seg[:, -1] == 2).all()
    assert ((ids == 4).sum(1) == 2).all() and not (ids[:, :R] == 4).any()
    for row_ids, row_seg in zip(ids[:50], seg[:50]):
        first, second = np.flatnonzero(row_ids == 4)
        assert (row_seg[:first + 1] == 0).all() and (row_seg[first + 1:-1] == 1).all()
        assert R < first < second == T - 2  # A and B non-empty, the second <sep> right before <cls>
    assert layout.reset[0].tolist() == [1] * 4 and not layout.reset[1:].any()
    again = layout_of(corpus)
    assert all((getattr(again, k) == getattr(layout, k)).all() for k in ("token_ids", "is_masked", "segment_ids"))
    other = layout_of(corpus, seed=1)
    assert not (other.is_masked == layout.is_masked).all()
    two = layout_of(corpus, num_passes=2)
    assert two.total_steps == two.token_ids.shape[0] == 2 * layout.steps and two.reset[layout.steps].all()
    assert (two.token_ids[:layout.steps] == layout.token_ids).all()  # pass 0 is the same, pass 1 new spans
    assert not (two.is_masked[layout.steps:] == layout.is_masked).all()


def test_rows_continue_and_bi_data_halves_are_reversals(corpus):
    _, _, (ids, _) = corpus
    layout = layout_of(corpus, bi_data=True)
    rows = xlnet_pretraining.batchify(ids, 2)
    reused = layout.token_ids[:, :, :R].transpose(1, 0, 2).reshape(4, -1)  # each row's reused prefixes in turn
    n = reused.shape[1]
    assert (reused[0] == rows[0, :n]).all() and (reused[1] == rows[1, :n]).all()
    assert (reused[2] == rows[0, ::-1][:n]).all() and (reused[3] == rows[1, ::-1][:n]).all()


def test_exactly_num_predict_targets_never_functional(corpus):
    layout = layout_of(corpus, num_predict=7)
    masked = layout.is_masked.reshape(-1, T)
    ids = layout.token_ids.reshape(-1, T)
    assert (masked[:, :R].sum(1) == 4).all() and (masked[:, R:].sum(1) == 3).all()
    assert not masked[np.isin(ids, (3, 4))].any()
    for batch in batches(make_dataset_fn(layout), None, 5):
        assert (batch["target_weights"] == 1).all() and (batch["input_q"].sum(1) == 7).all()
        positions = batch["target_mapping"].argmax(2)  # [b, P], increasing
        assert (np.diff(positions, axis=1) > 0).all() and (batch["target_mapping"].sum(2) == 1).all()
        assert (np.take_along_axis(batch["token_ids"], positions, 1) == batch["targets"]).all()
        assert (np.take_along_axis(batch["input_q"], positions, 1) == 1).all()


def test_local_perm_equals_the_original(corpus):
    layout = layout_of(corpus)
    ids, masked = layout.token_ids[3], layout.is_masked[3]
    perms = row_permutations(layout.seed, 3, tf.range(4), layout.perm_size, 4).numpy()
    assert all(sorted(p) == list(range(layout.perm_size)) for p in perms.reshape(-1, layout.perm_size))
    assert len({tuple(p) for p in perms.reshape(-1, layout.perm_size)}) == 8  # every row and part its own
    func = np.isin(ids, (4, 3))
    got_mask, got_targets = local_perm(tf.constant(masked[:, R:]), tf.constant(func[:, R:]), tf.constant(perms[:, 1]))
    for row in range(4):
        want_mask, want_targets = original_local_perm(ids[row, R:], masked[row, R:], perms[row, 1], layout.perm_size,
                                                      T - R, 4, 3)
        assert (got_mask.numpy()[row] == want_mask).all() and (got_targets.numpy()[row] == want_targets).all()


def original_split_a_and_b(data, sent_ids, begin_idx, tot_len, rng):
    """data_utils._split_a_and_b(..., extend_target=True) verbatim (its `random` the Random `rng`), NSP label
    dropped."""
    data_len = data.shape[0]
    if begin_idx + tot_len >= data_len:
        return None
    end_idx = begin_idx + 1
    cut_points = []
    while end_idx < data_len:
        if sent_ids[end_idx] != sent_ids[end_idx - 1]:
            if end_idx - begin_idx >= tot_len:
                break
            cut_points.append(end_idx)
        end_idx += 1
    a_begin = begin_idx
    if len(cut_points) == 0 or rng.random() < 0.5:
        if len(cut_points) == 0:
            a_end = end_idx
        else:
            a_end = rng.choice(cut_points)
        b_len = max(1, tot_len - (a_end - a_begin))
        b_begin = rng.randint(0, data_len - 1 - b_len)
        b_end = b_begin + b_len
        while b_begin > 0 and sent_ids[b_begin - 1] == sent_ids[b_begin]:
            b_begin -= 1
        while b_end < data_len - 1 and sent_ids[b_end - 1] == sent_ids[b_end]:
            b_end += 1
    else:
        a_end = rng.choice(cut_points)
        b_begin = a_end
        b_end = end_idx
    while a_end - a_begin + b_end - b_begin > tot_len:
        if a_end - a_begin > b_end - b_begin:
            a_end -= 1
        else:
            b_end -= 1
    if a_end >= data_len or b_end >= data_len:
        return None
    return a_begin, a_end, b_begin, b_end


def test_split_a_and_b_equals_the_original(corpus):
    _, _, (ids, sent) = corpus
    for row in (sent[:3000], sent[:3000][::-1], np.arange(500) // 40 % 2 == 0, np.zeros(300, bool)):
        boundaries = np.flatnonzero(row[1:] != row[:-1]) + 1
        ours, theirs = random.Random(5), random.Random(5)
        for begin in list(range(0, len(row), 7)):
            for tot_len in (13, 40):
                got = split_a_and_b(boundaries, len(row), begin, tot_len, ours)
                assert got == original_split_a_and_b(ids[:len(row)], row, begin, tot_len, theirs)


def test_perm_mask_semantics(corpus):
    layout = layout_of(corpus, perm_size=8)
    for batch in batches(make_dataset_fn(layout), None, 3):
        for mask, q, ids in zip(batch["perm_mask"], batch["input_q"], batch["token_ids"]):
            target, func = q.astype(bool), np.isin(ids, (3, 4))
            plain = ~target & ~func
            part = np.arange(T) >= R
            same_part = part[:, None] == part[None, :]
            assert (mask[:R, R:] == 1).all() and (mask[R:, :R] == 0).all()  # the reused prefix never sees the rest
            # non-targets see exactly the non-targets of their part (and all the reused prefix): never a target
            assert (mask[np.ix_(plain, ~plain)][same_part[np.ix_(plain, ~plain)]] == 1).all()
            assert (mask[np.ix_(plain, plain)][same_part[np.ix_(plain, plain)]] == 0).all()
            assert (np.diag(mask)[target] == 1).all() and (np.diag(mask)[~target] == 0).all()  # only targets
            t = np.flatnonzero(target)  # between two targets of one part exactly one sees the other
            pair = mask[np.ix_(t, t)] + mask[np.ix_(t, t)].T
            assert (pair[same_part[np.ix_(t, t)] & ~np.eye(len(t), dtype=bool)] == 1).all()
            block = np.arange(T) // 8  # blocks are factorised in order: later blocks see earlier targets
            later = block[t][:, None] > block[t][None, :]
            assert (mask[np.ix_(t, t)][later & same_part[np.ix_(t, t)]] == 0).all()


def original_sample_mask(sp, seg, reverse=False, max_gram=5, goal_num_predict=None, mask_alpha=6, mask_beta=1):
    """data_utils._sample_mask (its np.random a RandomState `sp.rng`), verbatim, seg[beg] bug included."""
    def _is_start_piece(piece):
        special_pieces = set(list('!"#$%&\"()*+,-./:;?@[\\]^_`{|}~'))
        return piece.startswith("\u2581") or piece.startswith("<") or piece in special_pieces

    seg_len = len(seg)
    mask = np.array([False] * seg_len, dtype=bool)
    num_predict = 0
    ngrams = np.arange(1, max_gram + 1, dtype=np.int64)
    pvals = 1. / np.arange(1, max_gram + 1)
    pvals /= pvals.sum(keepdims=True)
    if reverse:
        seg = np.flip(seg, 0)
    cur_len = 0
    while cur_len < seg_len:
        if goal_num_predict is not None and num_predict >= goal_num_predict:
            break
        n = sp.rng.choice(ngrams, p=pvals)
        if goal_num_predict is not None:
            n = min(n, goal_num_predict - num_predict)
        ctx_size = (n * mask_alpha) // mask_beta
        l_ctx = sp.rng.choice(ctx_size)
        r_ctx = ctx_size - l_ctx
        beg = cur_len + l_ctx
        while beg < seg_len and not _is_start_piece(sp.IdToPiece(seg[beg].item())):
            beg += 1
        if beg >= seg_len:
            break
        end = beg + 1
        cnt_ngram = 1
        while end < seg_len:
            if _is_start_piece(sp.IdToPiece(seg[beg].item())):
                cnt_ngram += 1
                if cnt_ngram > n:
                    break
            end += 1
        if end >= seg_len:
            break
        mask[beg:end] = True
        num_predict += end - beg
        cur_len = end + r_ctx
    while goal_num_predict is not None and num_predict < goal_num_predict:
        i = sp.rng.randint(seg_len)
        if not mask[i]:
            mask[i] = True
            num_predict += 1
    if reverse:
        mask = np.flip(mask, 0)
    return mask


def test_piece_rule_is_the_released_sample_mask(corpus):
    _, vocab, (ids, _) = corpus

    class Processor:
        rng = np.random.RandomState(3)
        IdToPiece = staticmethod(lambda i: vocab.pieces[i])

    ours = np.random.RandomState(3)
    for start in range(0, 3000, 100):
        seg = ids[start:start + 50]
        for reverse, goal in ((False, 8), (True, 8), (False, None)):
            want = original_sample_mask(Processor, seg, reverse=reverse, goal_num_predict=goal)
            got = sample_mask(vocab.start_pieces[seg], np.zeros(len(seg), bool), goal, ours, mask_alpha=6,
                              mask_beta=1, span_rule="piece", reverse=reverse)
            assert (got == want).all()


def test_span_lengths_follow_one_over_n():
    expected = (1 / np.arange(1, 6)) / (1 / np.arange(1, 6)).sum()
    starts = np.arange(20000) % 2 == 0  # words of two pieces
    for rule, unit, share_predicted in (("word", 2, 2 / 8), ("piece", 1, 1 / 7)):
        mask = sample_mask(starts, np.zeros_like(starts), None, np.random.RandomState(0), mask_alpha=6, mask_beta=1,
                           span_rule=rule)
        edges = np.diff(np.r_[0, mask.astype(int), 0])
        begins, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        assert starts[begins].all()  # spans begin at a word start
        lengths = (ends - begins) // unit
        assert ((ends - begins) % unit == 0).all() and len(lengths) > 1000
        share = np.bincount(lengths, minlength=6)[1:6] / len(lengths)
        assert np.abs(share - expected).max() < 0.04, (rule, share)
        # a span of n units per context of n * mask_alpha / mask_beta tokens beside it: 2n / 8n or n / 7n
        assert abs(mask.mean() - share_predicted) < 0.02, (rule, mask.mean())


@pytest.mark.parametrize("bi_data", [False, True])
def test_replica_count_invariance(corpus, bi_data):
    layout = layout_of(corpus, global_batch_size=8, bi_data=bi_data)
    dataset_fn = make_dataset_fn(layout)
    spec = dataset_fn(tf.distribute.InputContext(1, 0, 2)).element_spec
    assert spec["perm_mask"].shape == (4, T, T) and all(s.shape.is_fully_defined() for s in spec.values())
    one = batches(dataset_fn, tf.distribute.InputContext(1, 0, 1), 3)
    two = batches(dataset_fn, tf.distribute.InputContext(1, 0, 2), 6)
    pipelines = [batches(dataset_fn, tf.distribute.InputContext(2, p, 2), 3) for p in range(2)]
    order = np.argsort(replica_row_order(8, 2, bi_data))
    for step in range(3):
        for key in xlnet_pretraining.FEATURES:
            joined = np.concatenate([two[2 * step][key], two[2 * step + 1][key]])
            assert (joined[order] == one[step][key]).all(), key
            split = np.concatenate([pipelines[0][step][key], pipelines[1][step][key]])
            assert (split == joined).all(), key
    if bi_data:  # each replica's batch: two forward rows, then their reversals
        assert replica_row_order(8, 2, True).tolist() == [0, 1, 4, 5, 2, 3, 6, 7]


def test_epochs_renew_permutations_only():
    documents = text_sources.load_documents()[:1]
    vocab = train_xlnet_vocabulary(text_sources.load_documents()[:20], 200)
    layout = create_layout(documents, vocab, global_batch_size=2, seq_len=16, reuse_len=8, num_predict=4)
    got = batches(make_dataset_fn(layout), None, 2 * layout.steps)
    first, second = got[:layout.steps], got[layout.steps:]
    assert all((a["token_ids"] == b["token_ids"]).all() and (a["input_q"] == b["input_q"]).all()
               for a, b in zip(first, second))
    assert any((a["perm_mask"] != b["perm_mask"]).any() for a, b in zip(first, second))
    assert len(list(make_dataset_fn(layout, repeat=False)(None))) == layout.steps
    later = batches(lambda ctx: make_dataset_fn(layout)(ctx, start_batch=layout.steps + 1), None, 1)[0]
    assert all((later[k] == got[layout.steps + 1][k]).all() for k in xlnet_pretraining.FEATURES)  # skip, cheaply


def test_errors_name_the_flag(corpus):
    with pytest.raises(ZooError, match="--bi_data.*--global_batch_size"):
        layout_of(corpus, global_batch_size=3, bi_data=True)
    layout = layout_of(corpus, global_batch_size=4, bi_data=True)
    with pytest.raises(ZooError, match="--bi_data needs an even per-replica batch.*--global_batch_size=4"):
        make_dataset_fn(layout)(tf.distribute.InputContext(1, 0, 4))
    with pytest.raises(ZooError, match="--reuse_len"):
        layout_of(corpus, reuse_len=T)
    with pytest.raises(ZooError, match="--num_predict"):
        layout_of(corpus, num_predict=2 * R + 2)
    with pytest.raises(ZooError, match="--perm_size"):
        layout_of(corpus, perm_size=5)
    with pytest.raises(ZooError, match="--reuse_len=15 .*--perm_size"):  # gcd 1: left-to-right order
        layout_of(corpus, reuse_len=15)
    assert layout_of(corpus, reuse_len=15, perm_size=1).perm_size == 1  # unless asked for
    with pytest.raises(ZooError, match="empty"):
        create_layout([], corpus[1], global_batch_size=2, seq_len=T, reuse_len=R, num_predict=P)
    with pytest.raises(ZooError, match="too short.*--global_batch_size"):
        create_layout([["One short sentence."]], corpus[1], global_batch_size=2, seq_len=T, reuse_len=R,
                      num_predict=P)
    with pytest.raises(ZooError, match="--span_rule"):
        layout_of(corpus, span_rule="ngram")


@pytest.mark.parametrize("seq_len, reuse_len, most", [(16, 8, 11), (16, 12, 3), (12, 2, 2), (64, 32, 59)])
def test_num_predict_bound_keeps_a_reused_non_target(seq_len, reuse_len, most):
    """most = min(2 * (reuse_len - 1), 2 * (seq_len - reuse_len - 3) + 1): the reused part (which cannot see
    the rest) keeps one non-target, so its first target in the order sees something with empty memory; the
    rest may be all targets but for <sep> <sep> <cls>."""
    from zoo.data.xlnet_pretraining import check_options

    check_options(2, seq_len, reuse_len, most, perm_size=1)
    with pytest.raises(ZooError, match=f"--num_predict={most + 1} is not possible: 1 to {most} targets"):
        check_options(2, seq_len, reuse_len, most + 1, perm_size=1)
    first = most + 1 - (most + 1) // 2
    assert first >= reuse_len or (most + 1) // 2 > seq_len - reuse_len - 3
    with pytest.raises(ZooError, match="--reuse_len=1 leaves no target"):
        check_options(2, 16, 1, 1, perm_size=1)
    with pytest.raises(ZooError, match="--mask_alpha=6.5 and --mask_beta=1 must be integers"):
        check_options(2, 16, 8, 4, mask_alpha=6.5, mask_beta=1)


def test_all_but_one_reused_position_as_targets_leaves_every_query_a_visible_key(corpus):
    layout = layout_of(corpus, reuse_len=8, num_predict=14)  # 7 of the 8 reused positions are targets
    batch = next(iter(make_dataset_fn(layout)(None)))
    may = 1 - batch["perm_mask"].numpy()
    visible = (batch["target_mapping"].numpy() @ may).sum(-1)  # [b, P]: keys each target's query may see
    assert (visible[batch["target_weights"].numpy() > 0] >= 1).all()


def test_module_docstring_example_runs():
    code = xlnet_pretraining.__doc__.split("```python\n")[1].split("```")[0]
    namespace = {}
    exec(compile(code, "xlnet_pretraining example", "exec"), namespace)
    batch = namespace["batch"]
    assert batch["perm_mask"].shape == (4, 32, 32) and batch["target_mapping"].shape == (4, 6, 32)


def test_permutation_module_docstring_example_runs():
    code = xlnet_permutation.__doc__.split("```python\n")[1].split("```")[0]
    namespace = {}
    exec(compile(code, "xlnet_permutation example", "exec"), namespace)
    assert namespace["mask"].sum() == 6 and namespace["starts"][np.flatnonzero(namespace["mask"])].any()
