import numpy as np
import pytest
import torch

from rnnkit.config import ModelConfig
from rnnkit.data import RandomBatches, SequentialBatches, eval_batches
from rnnkit.errors import DataError
from rnnkit.models.torch_lm import RNNLM, detach_state

IDS = np.arange(1000) % 97


def test_sequential_windows_continue_each_other_exactly():
    batches = SequentialBatches(IDS, batch_size=4, seq_len=10)
    rows = [[] for _ in range(4)]
    for x, y in batches:
        assert x.shape == (4, 10)
        assert torch.equal(x[:, 1:], y[:, :-1])  # targets are inputs shifted by one
        for r in range(4):
            rows[r].extend(x[r].tolist())
    length = (len(IDS) - 1) // 4
    for r in range(4):  # each row is one contiguous piece of the stream
        start = r * length
        assert rows[r] == IDS[start : start + len(rows[r])].tolist()
    assert len(batches) == length // 10


def test_carried_state_tbptt_forward_equals_one_full_forward():
    torch.manual_seed(0)
    model = RNNLM(ModelConfig(model="lstm", layers=2, hidden=16, embed=8, vocab_size=97)).eval()
    batches = SequentialBatches(IDS, batch_size=3, seq_len=7)
    with torch.no_grad():
        state, pieces = None, []
        for x, _ in batches:
            logits, _, state = model(x, state=state)
            state = detach_state(state)
            pieces.append(logits)
        windowed = torch.cat(pieces, dim=1)
        full, _, _ = model(batches.x[:, : windowed.shape[1]])
    torch.testing.assert_close(windowed, full, rtol=1e-5, atol=1e-5)


def test_random_batches_are_reproducible_windows_of_the_stream():
    make = lambda: RandomBatches(IDS, 5, 12, torch.Generator().manual_seed(3))  # noqa: E731
    a, b = make(), make()
    for i in range(3):
        xa, ya = a.window(i)
        xb, yb = b.window(i)
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
        for row_x, row_y in zip(xa.tolist(), ya.tolist(), strict=True):
            assert all((u + 1) % 97 == v for u, v in zip(row_x, row_y, strict=True))  # y is x shifted in the stream


def test_too_short_text_is_a_data_error():
    with pytest.raises(DataError, match="too short"):
        SequentialBatches(np.arange(50), batch_size=8, seq_len=10)
    with pytest.raises(DataError, match="too short"):
        RandomBatches(np.arange(5), 2, 10, torch.Generator())


def test_eval_batches_score_every_token_after_the_first():
    batches = eval_batches(IDS, seq_len=64, max_streams=8, min_stream=100)
    assert batches.num_streams == 8
    covered = sum(x.numel() for x, _ in batches)
    assert covered == batches.tokens == 8 * ((len(IDS) - 1) // 8)
    single = eval_batches(IDS[:50], seq_len=16, max_streams=8)
    assert single.tokens == 49


def test_load_splits_reports_the_vocabulary_and_leaves_the_config_alone():
    from rnnkit.config import DataConfig, RunConfig
    from rnnkit.data import load_splits

    config = RunConfig(data=DataConfig(data="toy", tokenizer="word"))
    before = config.to_dict()
    loaded = load_splits(config.data)
    assert config.to_dict() == before  # nothing written into the config given
    assert loaded.vocab_size == len(loaded.tokenizer) > 2 and loaded.tokenizer_kind == "word"
    assert set(loaded.splits) == {"train", "val", "test"}
    assert loaded.tokenizer.decode(loaded.splits["val"].ids[:3].tolist()).strip()
    sized = loaded.sized(config)
    assert sized.model.vocab_size == loaded.vocab_size and config.model.vocab_size == 0
    assert "vocabulary" in loaded.summary() and "toy" in loaded.summary()


def test_load_splits_with_a_given_tokenizer_encodes_only_the_splits_asked_for(tmp_path):
    from rnnkit.config import DataConfig
    from rnnkit.data import load_splits

    trained = load_splits(DataConfig(data="toy", tokenizer="char"))
    text = tmp_path / "other.txt"
    text.write_text("".join(sorted(set(trained.tokenizer.decode(trained.splits["train"].ids.tolist())))) * 20)
    test_only = load_splits(
        DataConfig(data=str(text)), trained.tokenizer, names=("test",), fractions=(0.0, 0.0, 1.0), require_val=False
    )
    assert list(test_only.splits) == ["test"] and test_only.tokenizer is trained.tokenizer
    assert len(test_only.splits["test"].ids) == test_only.splits["test"].chars == len(text.read_text())
    with pytest.raises(DataError, match="validation split is empty"):
        load_splits(DataConfig(data=str(text), fractions=(1.0, 0.0, 0.0)))


def test_load_splits_from_a_prepared_directory_takes_its_tokenizer(tmp_path):
    from rnnkit.config import DataConfig
    from rnnkit.data import load_splits
    from rnnkit.text.prepare import prepare

    prepare(["toy"], "word", tmp_path / "p", fractions=(0.8, 0.1, 0.1))
    loaded = load_splits(DataConfig(data=str(tmp_path / "p"), tokenizer="char"))
    assert loaded.tokenizer_kind == "word" and loaded.name.endswith("(prepared)")
    assert isinstance(loaded.splits["train"].ids, np.memmap)
    assert load_splits(DataConfig(data=str(tmp_path / "p")), loaded.tokenizer).vocab_size == loaded.vocab_size
    other = load_splits(DataConfig(data="toy", tokenizer="char")).tokenizer
    with pytest.raises(DataError, match="another tokenizer"):
        load_splits(DataConfig(data=str(tmp_path / "p")), other)
