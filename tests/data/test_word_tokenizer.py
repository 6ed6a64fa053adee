"""The offline word tokenizer: family id layouts, round trips, unknown words, visual rows, saving, configs."""

import pytest
from transformers import AutoTokenizer, BartConfig, PreTrainedTokenizerFast, T5Config

from vlsurgery.data import DataError, fit_config, make_shapes_task, shapes_tokenizer, word_tokenizer
from vlsurgery.data.tokenizer import split_words

TEXTS = ["what colour is the circle?", "red", "how many squares are there?", "red"]


def test_bart_layout():
    tok = word_tokenizer(TEXTS, style="bart", visual_tokens=2)
    assert isinstance(tok, PreTrainedTokenizerFast)
    assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    ids = tok("red")["input_ids"]
    assert ids[0] == 0 and ids[-1] == 2 and len(ids) == 3
    assert "token_type_ids" not in tok("red")


def test_t5_layout():
    tok = word_tokenizer(TEXTS, style="t5", visual_tokens=2)
    assert (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id, tok.bos_token_id) == (0, 1, 2, None)
    ids = tok("red")["input_ids"]
    assert ids[-1] == 1 and len(ids) == 2


@pytest.mark.parametrize("style", ["bart", "t5"])
def test_every_text_round_trips(style):
    tok = word_tokenizer(TEXTS, style=style)
    for text in TEXTS:
        ids = tok(text)["input_ids"]
        assert tok.unk_token_id not in ids
        assert tok.decode(ids, skip_special_tokens=True) == text


def test_unknown_words_and_case():
    tok = word_tokenizer(TEXTS)
    ids = tok("What colour is the HEXAGON?")["input_ids"]
    assert ids.count(tok.unk_token_id) == 1
    assert tok("RED")["input_ids"] == tok("red")["input_ids"]


def test_visual_rows_are_the_last_ids_and_never_words():
    tok = word_tokenizer(TEXTS, visual_tokens=5)
    last = tok.convert_ids_to_tokens(list(range(len(tok) - 5, len(tok))))
    assert last == [f"<vis_extra_id_{j}>" for j in (4, 3, 2, 1, 0)]
    assert tok.decode(list(range(len(tok) - 5, len(tok))), skip_special_tokens=True) == ""


def test_same_texts_same_ids_and_min_frequency():
    a, b = word_tokenizer(TEXTS), word_tokenizer(list(reversed(TEXTS)))
    assert a.get_vocab() == b.get_vocab()
    rare = word_tokenizer(TEXTS, min_frequency=2, visual_tokens=0)
    assert set(rare.get_vocab()) == {"<s>", "<pad>", "</s>", "<unk>", "red", "?"}  # both twice


def test_save_and_load_give_the_same_tokenizer(tmp_path):
    tok = word_tokenizer(TEXTS, style="t5")
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again("how many squares?")["input_ids"] == tok("how many squares?")["input_ids"]
    assert (again.pad_token_id, again.eos_token_id, len(again)) == (tok.pad_token_id, tok.eos_token_id, len(tok))


def test_fit_config_sets_vocab_and_special_ids():
    task = make_shapes_task(feat_dim=4, sizes={"train": 5})
    bart = fit_config(BartConfig(vocab_size=128, d_model=16), shapes_tokenizer(task, style="bart"))
    tok = shapes_tokenizer(task, style="bart")
    assert (bart.vocab_size, bart.pad_token_id, bart.bos_token_id, bart.eos_token_id,
            bart.decoder_start_token_id) == (len(tok), 1, 0, 2, 2)
    t5tok = shapes_tokenizer(task, style="t5")
    t5 = fit_config(T5Config(vocab_size=128), t5tok)
    assert (t5.vocab_size, t5.pad_token_id, t5.eos_token_id, t5.decoder_start_token_id) == (len(t5tok), 0, 1, 0)
    with pytest.raises(DataError, match="style='bart'"):
        fit_config(BartConfig(), t5tok)


def test_shapes_tokenizer_knows_every_word_and_reserves_one_row_per_cell():
    task = make_shapes_task(feat_dim=4, sizes={"train": 200})
    tok = shapes_tokenizer(task)
    for ex in task.splits["train"]:
        assert tok.unk_token_id not in tok(f"vqa: {ex.question}")["input_ids"] + tok(ex.answer)["input_ids"]
    assert tok.convert_ids_to_tokens(len(tok) - 9) == "<vis_extra_id_8>"


def test_split_words_and_errors():
    assert split_words("vqa: Is it?") == ["vqa", ":", "is", "it", "?"]
    with pytest.raises(DataError, match="unknown tokenizer style"):
        word_tokenizer(TEXTS, style="gpt")
    with pytest.raises(DataError, match="no words"):
        word_tokenizer(["  ", ""])
