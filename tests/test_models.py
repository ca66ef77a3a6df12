import socket

import numpy as np
import pytest

from explorer.embeddings import cosine_similarity, pca_2d
from explorer.models import ModelStore
from gpt2.download import DownloadError


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/gpt-2/models"


def test_choices_are_the_local_directory_then_the_released_sizes(tiny_checkpoint_dir):
    store = ModelStore(tiny_checkpoint_dir)
    assert store.choices == [f"local: {tiny_checkpoint_dir.name}", "124M", "355M", "774M", "1558M"]
    assert store.default == store.choices[0]
    assert ModelStore().default == "124M"


@pytest.mark.parametrize("name", ["../../etc/passwd", "125M", "", "local: other", "http://example.com/x"])
def test_names_outside_the_allowlist_are_refused(tiny_checkpoint_dir, name):
    with pytest.raises(ValueError, match="Model: unknown model"):
        ModelStore(tiny_checkpoint_dir).get(name)


def test_a_model_is_loaded_once_and_shared(tiny_checkpoint_dir):
    store = ModelStore(tiny_checkpoint_dir)
    first = store.get(store.default)
    assert store.get(store.default) is first
    assert first.induction.shape == (first.model.config.n_layer, first.model.config.n_head)
    assert first.position_pca[0].shape == (first.model.config.n_ctx, 2)


def test_a_failed_download_says_what_happened_and_what_to_do(tmp_path):
    store = ModelStore(cache_dir=tmp_path, base_url=closed_port_url(), retries=0)
    assert store.needs_download("355M")
    with pytest.raises(DownloadError) as raised:
        store.get("355M")
    message = str(raised.value)
    assert "355M" in message and "connect" in message.lower() and "keep working" in message


def test_pca_finds_the_direction_of_largest_spread():
    rng = np.random.default_rng(0)
    points = np.outer(rng.standard_normal(200), [3.0, 4.0, 0.0]) + 0.01 * rng.standard_normal((200, 3))
    coords, variance = pca_2d(points)
    assert variance[0] > 0.99 and variance.sum() <= 1.0 + 1e-9
    # The first coordinate is the projection on (3, 4, 0) / 5, up to sign.
    expected = (points - points.mean(0)) @ np.array([0.6, 0.8, 0.0])
    assert abs(np.corrcoef(coords[:, 0], expected)[0, 1]) > 0.999


def test_cosine_similarity_of_known_vectors():
    sims = cosine_similarity(np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0], [-1.0, 0.0]]))
    np.testing.assert_allclose(sims[0], [1.0, 1.0, 0.0, -1.0], atol=1e-12)


def test_a_loaded_model_is_served_while_another_is_loading(tiny_checkpoint_dir):
    store = ModelStore(tiny_checkpoint_dir)
    first = store.get(store.default)
    with store._lock_for("355M"):  # as if another size were downloading
        assert store.get(store.default) is first


def test_the_sizes_offered_by_default_are_those_whose_weights_fit_beside_the_budget():
    from explorer.models import sizes_that_fit

    gb = 2**30
    assert sizes_that_fit(16 * gb, reserved=4 * gb) == ["124M", "355M", "774M", "1558M"]
    assert sizes_that_fit(8 * gb, reserved=3 * gb // 2) == ["124M", "355M", "774M"]  # 1558M's 5.8 GiB: no room
    assert sizes_that_fit(2 * gb, reserved=gb // 2) == ["124M"]
    assert sizes_that_fit(None, reserved=gb) == ["124M", "355M", "774M", "1558M"]


def test_the_host_chooses_the_sizes_by_flag_or_environment(monkeypatch):
    from explorer.models import offered_sizes

    monkeypatch.setenv("EXPLORER_SIZES", "124M,355M")
    assert offered_sizes(None, memory=None, reserved=0) == ["124M", "355M"]
    assert offered_sizes("774M", memory=None, reserved=0) == ["774M"]  # the flag wins
    assert offered_sizes("", memory=None, reserved=0) == []
    with pytest.raises(ValueError, match="unknown size.*9000M"):
        offered_sizes("124M,9000M", memory=None, reserved=0)


def test_a_size_the_host_did_not_offer_is_refused(tiny_checkpoint_dir):
    store = ModelStore(tiny_checkpoint_dir, sizes=["124M"])
    assert store.choices == [store.local_name, "124M"]
    with pytest.raises(ValueError, match="unknown model '1558M'"):
        store.get("1558M")


def test_a_loaded_model_carries_its_own_tokenizer(tiny_checkpoint_dir):
    store = ModelStore(tiny_checkpoint_dir)
    loaded = store.get(store.default)
    assert loaded.tokenizer.decode(loaded.tokenizer.encode("Every effort")) == "Every effort"
