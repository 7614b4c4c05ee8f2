"""The PMI n-gram vocabulary (Levine et al. 2021): the measure against brute force, its ranking on real text, the
`t5lab pmi build` command end to end, the plain file format (ours and the public release's) and bad inputs."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
from transformers import AutoTokenizer

from t5lab.cli import main
from t5lab.data import pmi
from t5lab.data.pmi import build_pmi_vocab, load_pmi_vocab, word_start_table, write_pmi_vocab
from t5lab.errors import ConfigError


@pytest.fixture(scope="module")
def tokenizer(wiki_tokenizer_dir):
    return AutoTokenizer.from_pretrained(wiki_tokenizer_dir)


def _brute_force(lines: list[str], tokenizer, min_count: int, max_n: int) -> dict[str, tuple[int, float]]:
    """PMI_n of every n-gram, 2 <= n <= max_n, seen min_count times, with dicts and all segmentations spelled out."""
    specials = set(tokenizer.all_special_ids)
    segments = []  # runs of words (tuples of token ids) that no n-gram crosses
    for line in lines:
        ids = tokenizer(line, add_special_tokens=False)["input_ids"]
        pieces = tokenizer.convert_ids_to_tokens(ids)
        words: list[list[int]] = []
        for token, piece in zip(ids, pieces):
            if token in specials or piece.startswith("▁") or not words:
                words.append([token])
            else:
                words[-1].append(token)
        run: list[tuple[int, ...]] = []
        for word in words:
            if word[0] in specials or not tokenizer.convert_ids_to_tokens(word[0]).startswith("▁"):
                segments.append(run)
                run = []
            else:
                run.append(tuple(word))
        segments.append(run)
    counts = [Counter() for _ in range(max_n + 1)]
    for run in segments:
        for n in range(1, max_n + 1):
            for i in range(len(run) - n + 1):
                counts[n][tuple(run[i : i + n])] += 1
    positions = [0] + [sum(max(0, len(run) - n + 1) for run in segments) for n in range(1, max_n + 1)]

    def log_p(gram):
        return math.log(counts[len(gram)][gram] / positions[len(gram)])

    def segmentations(gram):  # every split into contiguous parts, the whole included
        yield [gram]
        for cut in range(1, len(gram)):
            for rest in segmentations(gram[cut:]):
                yield [gram[:cut], *rest]

    text = {}
    result = {}
    for n in range(2, max_n + 1):
        for gram, count in counts[n].items():
            if count < min_count:
                continue
            for word in gram:
                text.setdefault(word, tokenizer.decode(list(word)))
            if any(not text[w] or text[w].split() != [text[w]] for w in gram):
                continue  # a word the plain format cannot hold (a lone "▁")
            pmi = min(
                log_p(gram) - sum(log_p(part) for part in parts) for parts in segmentations(gram) if len(parts) > 1
            )
            result[" ".join(text[w] for w in gram)] = (count, pmi)
    return result


def test_pmi_equals_brute_force_on_real_text(tokenizer, shared_data, wikitext_file, monkeypatch):
    lines = (shared_data / "corpus" / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8").splitlines()[:2000]
    # WikiText's first lines hold characters this tokenizer lacks: <unk> must split words and n-grams
    lines += wikitext_file.read_text(encoding="utf-8").splitlines()[:300]
    assert any(tokenizer.unk_token_id in ids for ids in tokenizer(lines, add_special_tokens=False)["input_ids"])
    expected = _brute_force(lines, tokenizer, min_count=2, max_n=5)
    vocab = build_pmi_vocab(iter(lines), tokenizer, size=10**6, min_count=2, max_n=5)
    # many small batches and count chunks merged as they come: the same counts, scores and order
    monkeypatch.setattr(pmi, "_BATCH_LINES", 97)
    monkeypatch.setattr(pmi, "_COUNT_CHUNK", 1000)
    assert build_pmi_vocab(iter(lines), tokenizer, size=10**6, min_count=2, max_n=5) == vocab
    assert {len(text.split()) for text in expected} == {2, 3, 4, 5}
    assert {g.text: g.count for g in vocab} == {text: count for text, (count, _) in expected.items()}
    for g in vocab:
        assert g.n == len(g.text.split())
        assert g.pmi == pytest.approx(expected[g.text][1], abs=1e-9), g.text
    scores = [(-round(g.pmi, 9), -g.count) for g in vocab]
    assert scores == sorted(scores)  # best first, ties to the more frequent
    top = build_pmi_vocab(iter(lines), tokenizer, size=25, min_count=2, max_n=5)
    assert top == vocab[:25]


def test_a_collocation_ranks_above_frequent_words_that_merely_co_occur(tokenizer, wikitext_file):
    lines = wikitext_file.read_text(encoding="utf-8").splitlines()
    vocab = {g.text: g for g in build_pmi_vocab(lines, tokenizer, size=10**6, min_count=10, max_n=3)}
    collocation, common = vocab["Los Angeles"], vocab["of the"]
    assert collocation.count >= 20 and common.count > 50 * collocation.count
    assert collocation.pmi > 8 and common.pmi < 2
    ranked = list(vocab)
    assert ranked.index("Los Angeles") < 100 < ranked.index("of the")


def test_word_start_table_marks_words_and_special_tokens(tokenizer):
    table = word_start_table(tokenizer)
    assert table.shape == (len(tokenizer),) and table.dtype == bool
    assert table[tokenizer.all_special_ids].all()
    ids = tokenizer("Hong Kong, 1997", add_special_tokens=False)["input_ids"]
    pieces = tokenizer.convert_ids_to_tokens(ids)
    assert table[ids].tolist() == [piece.startswith("▁") for piece in pieces]
    assert table[ids].sum() == 3


def test_pmi_build_command_writes_the_plain_format(tmp_path, wikitext_file, wiki_tokenizer_dir, tokenizer):
    output = tmp_path / "vocab" / "pmi.txt"
    command = [sys.executable, "-m", "t5lab", "pmi", "build", "--train_file", str(wikitext_file)]
    command += ["--tokenizer_name", str(wiki_tokenizer_dir), "--output", str(output), "--size", "300"]
    command += ["--min_count", "8", "--cache_dir", str(tmp_path / "hf")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAYON_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "300 n-grams by length: 2:" in result.stdout and "peak RSS" in result.stdout
    lines = output.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 300 and len(set(lines)) == 300
    assert all(2 <= len(line.split()) <= 5 and " ".join(line.split()) == line for line in lines)
    assert [p.name for p in output.parent.iterdir()] == ["pmi.txt"]  # no temporary file left behind
    ngrams = load_pmi_vocab(output, tokenizer)
    assert [tokenizer.decode(ids.tolist()) for ids in ngrams] == lines
    # as in running text: the ids of an n-gram are those it has inside a sentence
    sentence = tokenizer(f"It was said that {lines[0]} is here.", add_special_tokens=False)["input_ids"]
    first = ngrams[0].tolist()
    assert any(sentence[i : i + len(first)] == first for i in range(len(sentence)))


def test_public_release_format_loads(tmp_path, tokenizer, caplog):
    path = tmp_path / "pmi-public.txt"
    path.write_text("new york\nthe united states\n\nunited\nby the way we go home\nlos angeles\n", encoding="utf-8")
    ngrams = load_pmi_vocab(path, tokenizer)
    assert [tokenizer.decode(ids.tolist()) for ids in ngrams] == ["new york", "the united states", "los angeles"]
    starts = word_start_table(tokenizer)
    assert [int(starts[ids].sum()) for ids in ngrams] == [2, 3, 2]
    assert "skipped 2 of 5 n-grams" in caplog.text  # one word, six words; the blank line is not counted
    assert all(ids.dtype == np.int64 for ids in ngrams)


def test_written_file_is_exactly_one_ngram_per_line(tmp_path, tokenizer):
    from t5lab.data.pmi import PmiNgram

    path = tmp_path / "v.txt"
    write_pmi_vocab([PmiNgram("Hong Kong", 2, 12, 9.5), PmiNgram("the United States", 3, 40, 7.0)], path)
    assert path.read_bytes() == b"Hong Kong\nthe United States\n"
    assert len(load_pmi_vocab(path, tokenizer)) == 2


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "does not exist"),
        (b"", "is empty"),
        (b"new york\n\x00\x01\x02binary", "is not a text file: line 2 holds a NUL byte"),
        (b"new york\nsan jos\xe9\n", "is not UTF-8 text at line 2"),
        (b"york\nthe united states of america here\n", "has no usable line"),
    ],
)
def test_unreadable_vocabulary_is_a_one_line_error(tmp_path, tokenizer, content, message):
    path = tmp_path / "vocab.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError, match=message) as raised:
        load_pmi_vocab(path, tokenizer)
    assert str(path) in str(raised.value) and "\n" not in str(raised.value)


def _run_cli(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


def test_bad_inputs_are_one_line_errors_with_exit_2(tmp_path, capsys, wikitext_file, wiki_tokenizer_dir):
    out, corpus, tok = str(tmp_path / "a.txt"), str(wikitext_file), str(wiki_tokenizer_dir)
    build = ["pmi", "build", "--cache_dir", str(tmp_path / "hf")]
    cases = [
        ([*build, "--tokenizer_name", tok, "--train_file", str(tmp_path / "missing.txt"), "--output", out], "exist"),
        ([*build, "--tokenizer_name", tok, "--train_file", corpus, "--output", out, "--size", "0"], "--size"),
        ([*build, "--tokenizer_name", tok, "--train_file", corpus, "--output", out, "--max_n", "6"], "--max_n"),
        ([*build, "--tokenizer_name", tok, "--train_file", corpus, "--output", out, "--max_n", "1"], "--max_n"),
        ([*build, "--tokenizer_name", tok, "--train_file", corpus, "--output", out, "--min_count", "0"], "--min_count"),
        (
            [*build, "--tokenizer_name", str(tmp_path / "no-tokenizer"), "--train_file", corpus, "--output", out],
            "not a directory",
        ),
        ([*build, "--train_file", corpus, "--output", out], "--tokenizer_name"),
        ([*build, "--tokenizer_name", tok, "--train_file", corpus], "--output"),
        ([*build, "--tokenizer_name", tok, "--output", out], "no training data"),
        (["pmi"], "usage: t5lab pmi build"),
    ]
    for argv, message in cases:
        code, err = _run_cli(argv, capsys)
        assert code == 2, argv
        assert message in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert not (tmp_path / "a.txt").exists()


def test_existing_output_is_refused_and_left_unchanged(tmp_path, capsys, wikitext_file, wiki_tokenizer_dir):
    output = tmp_path / "pmi.txt"
    output.write_text("keep me\n", encoding="utf-8")
    argv = ["pmi", "build", "--train_file", str(wikitext_file), "--tokenizer_name", str(wiki_tokenizer_dir)]
    code, err = _run_cli([*argv, "--output", str(output)], capsys)
    assert code == 2 and "exists" in err and "--overwrite_output" in err and err.count("\n") == 1
    assert output.read_text(encoding="utf-8") == "keep me\n"


def test_binary_vocabulary_through_the_command(tmp_path, capsys, wiki_tokenizer_dir):
    vocab = tmp_path / "pmi.bin"
    vocab.write_bytes(bytes(range(256)) * 4)
    check = ["pmi", "check", "--tokenizer_name", str(wiki_tokenizer_dir), "--pmi_vocab"]
    code, err = _run_cli([*check, str(vocab)], capsys)
    assert code == 2 and "not a text file: line 1 holds a NUL byte" in err and err.count("\n") == 1
    vocab.write_text("new york\nlos angeles\n", encoding="utf-8")
    assert main([*check, str(vocab)]) == 0
    assert "2 n-grams load" in capsys.readouterr().out
