import socket

import numpy as np
import pytest

from explorer.embeddings import cosine_similarity, pca_2d
from explorer.store import SHIPPED, ModelStore
from gpt2.download import DownloadError


SHIPPED_NAME = "tiny (trained here)"


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/gpt-2/models"


def test_choices_are_the_local_directory_then_the_released_sizes_then_the_shipped_model(tiny_checkpoint_dir):
    store = ModelStore(tiny_checkpoint_dir)
    assert store.choices == [f"local: {tiny_checkpoint_dir.name}", "124M", "355M", "774M", "1558M", SHIPPED_NAME]
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


def test_a_public_app_offers_124m_unless_the_host_lists_more(monkeypatch):
    from explorer.store import offered_sizes

    monkeypatch.delenv("EXPLORER_SIZES", raising=False)
    assert offered_sizes(None) == ["124M"]  # not 1558M, which any visitor could start downloading


def test_the_host_chooses_the_sizes_by_flag_or_environment(monkeypatch):
    from explorer.store import offered_sizes

    monkeypatch.setenv("EXPLORER_SIZES", "124M,355M")
    assert offered_sizes(None) == ["124M", "355M"]
    assert offered_sizes("774M") == ["774M"]  # the flag wins
    assert offered_sizes("") == []
    with pytest.raises(ValueError, match="unknown size.*9000M"):
        offered_sizes("124M,9000M")


def test_a_listed_size_that_does_not_fit_the_machine_is_refused_with_what_it_needs():
    import torch

    from explorer.store import check_sizes_fit

    gb, cpu = 2**30, torch.device("cpu")
    check_sizes_fit(["124M", "355M", "774M", "1558M"], cpu, host_memory=16 * gb, reserved=4 * gb)
    check_sizes_fit(["124M", "355M", "774M"], cpu, host_memory=8 * gb, reserved=3 * gb // 2)
    with pytest.raises(ValueError, match=r"1558M.*needs 8\.3 GiB.*--sizes"):  # 5.8 GiB of weights + budget + app
        check_sizes_fit(["124M", "1558M"], cpu, host_memory=8 * gb, reserved=3 * gb // 2)
    check_sizes_fit(["124M", "1558M"], cpu, host_memory=8 * gb, reserved=3 * gb // 2, dtype=torch.bfloat16)
    check_sizes_fit(["1558M"], cpu, host_memory=None)  # unknown memory: nothing to check against


def test_the_gpu_memory_a_size_needs_counts_weights_and_a_full_context_analysis(monkeypatch):
    import torch

    from explorer import store as models

    for size in ("124M", "1558M"):
        weights = models.PARAMETERS[size] * 4
        config = models.gpt2.GPTConfig.preset(size)
        patterns = config.n_layer * config.n_head * config.n_ctx**2 * 2  # every layer's pattern, float16
        assert weights + patterns < models.gpu_bytes_needed(size) < 2 * (weights + patterns)
        assert models.gpu_bytes_needed(size, torch.bfloat16) < models.gpu_bytes_needed(size)
    # A GPU of 8 GiB holds 124M to 774M, not 1558M (6.2 GB of weights and 2.5 GB of patterns at 1024 tokens).
    monkeypatch.setattr(models, "device_memory", lambda device: 8 * 2**30)
    monkeypatch.setattr(models, "device_name", lambda device: "a test GPU")
    models.check_sizes_fit(["124M", "355M", "774M"], torch.device("cuda"))
    with pytest.raises(ValueError, match="1558M.*a test GPU"):
        models.check_sizes_fit(["124M", "1558M"], torch.device("cuda"))


def test_a_size_the_host_did_not_offer_is_refused(tiny_checkpoint_dir):
    store = ModelStore(tiny_checkpoint_dir, sizes=["124M"])
    assert store.choices == [store.local_name, "124M", SHIPPED_NAME]
    with pytest.raises(ValueError, match="unknown model '1558M'"):
        store.get("1558M")


def test_a_loaded_model_carries_its_own_tokenizer(tiny_checkpoint_dir):
    store = ModelStore(tiny_checkpoint_dir)
    loaded = store.get(store.default)
    assert loaded.tokenizer.decode(loaded.tokenizer.encode("Every effort")) == "Every effort"


# ---- the shipped model, offline by default

def fake_download(cache_dir, size="124M"):
    """A cache that counts as downloaded (is_downloaded checks the files are there; 124M's data file by size)."""
    from gpt2.download import DATA_FILE, FILES, model_dir

    folder = model_dir(size, cache_dir)
    folder.mkdir(parents=True)
    for name in FILES:
        with open(folder / name, "wb") as f:
            f.truncate(497_759_232 if name == DATA_FILE else 1)  # sparse: no disk is used


def test_the_shipped_model_is_always_offered_under_one_fixed_name():
    assert SHIPPED == {SHIPPED_NAME: "tiny"}
    assert ModelStore(sizes=[]).choices == [SHIPPED_NAME]


def test_offline_with_nothing_cached_the_app_starts_with_the_shipped_model_and_says_why(tmp_path):
    store = ModelStore(cache_dir=tmp_path, sizes=["124M"])
    assert store.starting_model(reachable=lambda: False) == SHIPPED_NAME
    notice = store.status_notice(SHIPPED_NAME)
    assert "cannot be reached" in notice and "python -m gpt2 download 124M" in notice and "Model menu" in notice
    assert store.status_notice("124M") == ""


def test_a_real_closed_port_counts_as_offline_after_one_quick_check(tmp_path):
    store = ModelStore(cache_dir=tmp_path, sizes=["124M"], base_url=closed_port_url())
    assert store.starting_model() == SHIPPED_NAME


def test_online_with_nothing_cached_gpt2_stays_the_default(tmp_path):
    store = ModelStore(cache_dir=tmp_path, sizes=["124M"])
    assert store.starting_model(reachable=lambda: True) == "124M" and store.notice == ""


def test_a_cached_gpt2_stays_the_default_without_asking_the_network(tmp_path):
    fake_download(tmp_path)
    store = ModelStore(cache_dir=tmp_path, sizes=["124M"])
    assert store.starting_model(reachable=lambda: pytest.fail("no check when cached")) == "124M"


@pytest.mark.parametrize("flag, expected", [("tiny", SHIPPED_NAME), ("355M", "355M")])
def test_size_flag_chooses_the_starting_model(tmp_path, flag, expected):
    store = ModelStore(cache_dir=tmp_path)
    assert store.starting_model(flag, reachable=lambda: pytest.fail("the flag decides")) == expected


def test_the_shipped_model_loads_with_its_own_tokenizer_and_its_training_snapshots():
    store = ModelStore(sizes=[])
    loaded = store.get(SHIPPED_NAME)
    assert loaded.tokenizer.n_vocab == loaded.model.config.n_vocab == 4096
    run = store.training_run(SHIPPED_NAME)
    logged = [s["step"] for s in run.log["snapshots"]]
    assert [s.step for s in run.snapshots] == logged + [run.log["step"]] and len(logged) >= 8  # and the finished model
    assert run.repeat_tokens is None  # its repeats drew from the whole vocabulary: no pool of tokens to list


def test_the_shipped_model_is_labelled_with_an_induction_head_by_the_explorers_own_test():
    loaded = ModelStore(sizes=[]).get(SHIPPED_NAME)
    assert loaded.induction.max() >= 0.4  # heads.LABEL_RULES' induction threshold


def test_a_snapshot_is_loaded_with_the_finished_models_tokenizer_and_differs_from_it():
    store = ModelStore(sizes=[])
    last = len(store.training_run(SHIPPED_NAME).snapshots) - 1
    first, finished = store.snapshot(SHIPPED_NAME, 0), store.snapshot(SHIPPED_NAME, last)
    assert finished is store.get(SHIPPED_NAME)
    assert first.tokenizer is finished.tokenizer
    assert not np.allclose(first.model.wte.weight.detach().numpy(), finished.model.wte.weight.detach().numpy())
    assert first.induction.max() < 0.1  # before training: no induction head yet


def test_at_most_max_snapshots_stay_loaded():
    store = ModelStore(sizes=[])
    store.max_snapshots = 2
    first = store.snapshot(SHIPPED_NAME, 0)
    store.snapshot(SHIPPED_NAME, 1)
    store.snapshot(SHIPPED_NAME, 2)
    assert len(store._snapshots) == 2 and store.snapshot(SHIPPED_NAME, 0) is not first


@pytest.mark.parametrize("index", [-1, "past the end", 1.5, "3", True, None])
def test_snapshot_indices_outside_the_run_are_refused(index):
    store = ModelStore(sizes=[])
    last = len(store.training_run(SHIPPED_NAME).snapshots) - 1
    index = last + 1 if index == "past the end" else index
    with pytest.raises(ValueError, match=f"Snapshot must be a whole number from 0 to {last}"):
        store.snapshot(SHIPPED_NAME, index)


def test_openai_sizes_and_folders_without_a_log_have_no_training_run(tiny_checkpoint_dir):
    store = ModelStore(tiny_checkpoint_dir)
    assert store.training_run("124M") is None and store.training_run(store.local_name) is None
    with pytest.raises(ValueError, match="has no training snapshots"):
        store.snapshot(store.local_name, 0)


def test_a_snapshot_path_in_a_log_cannot_leave_the_model_folder(tmp_path):
    import json

    from explorer.store import TrainingRun

    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "model.safetensors").write_bytes(b"")
    model = tmp_path / "model"
    (model / "snapshots" / "step-5").mkdir(parents=True)
    (model / "snapshots" / "step-5" / "model.safetensors").write_bytes(b"")
    log = {"step": 10, "tokens_seen": 100, "snapshots": [{"step": 1, "tokens_seen": 10, "path": "../outside"},
                                                         {"step": 5, "tokens_seen": 50, "path": "snapshots/step-5"}]}
    (model / "training_log.json").write_text(json.dumps(log))
    run = TrainingRun.read(model)
    assert [(s.step, s.folder) for s in run.snapshots] == [(5, (model / "snapshots" / "step-5").resolve()), (10, model)]


def test_pca_of_repeated_tokens_matches_the_svd_of_every_row():
    # A long prompt repeats its tokens: PCA works on the distinct rows, weighted by how often each occurs.
    rng = np.random.default_rng(1)
    points = rng.normal(size=(30, 64))[rng.integers(0, 30, 500)]
    coords, variance = pca_2d(points)
    centred = points - points.mean(0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    np.testing.assert_allclose(variance, s[:2] ** 2 / (s ** 2).sum(), rtol=1e-9)
    np.testing.assert_allclose(np.abs(coords), np.abs(u[:, :2] * s[:2]), atol=1e-9)


def test_where_the_heads_formed_is_measured_once(monkeypatch):
    """It loads every snapshot; the Compare and Training tabs ask again each time they are built."""
    store = ModelStore(sizes=[])
    first = store.heads_formed(SHIPPED_NAME)
    assert first is not None and first[0] < first[1] and first[2] >= 0.4
    monkeypatch.setattr(store, "snapshot", lambda *args: pytest.fail("measured again"))
    assert store.heads_formed(SHIPPED_NAME) == first
