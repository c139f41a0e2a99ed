"""empirical.chunks: constructions that survive being killed, resuming at the chunk they were in."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import empirical.chunks as chunks
import empirical.construct as construct
from empirical.chunks import chunked
from empirical.cli import main
from empirical.construct import features_dataset, relabelled_dataset
from empirical.data import planted
from empirical.train import TrainConfig, load_checkpoint, train

RUN = Path(__file__).with_name("killable_run.py")


def doubling(calls: list):
    def work(x, positions):
        calls.append(positions.tolist())
        return (2 * x, positions)
    return work


def test_chunks_concatenate_to_the_whole_and_a_rerun_computes_none_of_them_again(tmp_path):
    x = torch.arange(10.0)
    calls = []
    doubled, positions = chunked(doubling(calls), (x,), chunk=4, folder=tmp_path, settings={"kind": "double"})
    assert torch.equal(doubled, 2 * x) and torch.equal(positions, torch.arange(10))
    assert calls == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    again = chunked(doubling(calls := []), (x,), chunk=4, folder=tmp_path, settings={"kind": "double"})
    assert calls == [] and torch.equal(again[0], doubled)
    assert torch.equal(chunked(doubling([]), (x,), chunk=4, folder=None, settings={})[0], doubled)


def test_a_chunk_cut_short_before_its_checksum_is_computed_again(tmp_path):
    x = torch.arange(6.0)
    chunked(doubling([]), (x,), chunk=3, folder=tmp_path, settings={})
    (tmp_path / "chunk-00001.pt.sha256").unlink()  # killed between the rename and the checksum
    chunked(doubling(calls := []), (x,), chunk=3, folder=tmp_path, settings={})
    assert calls == [[3, 4, 5]]
    (tmp_path / "chunk-00000.pt.sha256").write_text("0" * 64 + "  chunk-00000.pt\n")  # a mismatching checksum
    chunked(doubling(calls := []), (x,), chunk=3, folder=tmp_path, settings={})
    assert calls == [[0, 1, 2]]


def test_chunks_of_another_construction_are_refused_by_name(tmp_path):
    x = torch.arange(6.0)
    chunked(doubling([]), (x,), chunk=3, folder=tmp_path, settings={"eps": 0.5})
    with pytest.raises(ValueError, match="holds chunks of another construction"):
        chunked(doubling([]), (x,), chunk=3, folder=tmp_path, settings={"eps": 0.25})
    with pytest.raises(ValueError, match="holds chunks of another construction"):
        chunked(doubling([]), (x,), chunk=2, folder=tmp_path, settings={"eps": 0.5})
    with pytest.raises(ValueError, match="chunk must be a positive integer, got 0"):
        chunked(doubling([]), (x,), chunk=0, folder=None, settings={})
    with pytest.raises(ValueError, match=r"differ in length: \[6, 5\]"):
        chunked(doubling([]), (x, x[:5]), chunk=3, folder=None, settings={})


def stage_folder(out: Path, stage: str) -> Path:
    (folder,) = (out / "stages").glob(f"{stage}-*")
    return folder


def test_a_run_killed_mid_construction_resumes_at_its_chunk_and_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    """The tiny preset's D_rand in 3 chunks of one batch: killed by SIGKILL right after its second chunk is saved
    (tests/killable_run.py, its own process), then rerun by the same command."""
    whole, killed, saved = tmp_path / "whole", tmp_path / "killed", []
    monkeypatch.setattr(construct, "CHUNK_BATCHES", 1)
    command = ["run", "--preset", "tiny", "--stages", "D_rand", "--quiet", "--device", "cpu", "--out"]
    assert main([*command, str(whole)]) == 0
    died = subprocess.run([sys.executable, str(RUN), str(killed), "D_rand"], capture_output=True, text=True,
                          timeout=300, cwd=Path(__file__).parents[1])
    assert died.returncode == -9, died.stderr  # SIGKILL: no handler ran
    folder = stage_folder(killed, "D_rand")
    assert not (folder / "data.pt").exists() and (folder / "chunks" / "chunk-00001.pt").is_file()
    first_sitting = json.loads((folder / "stopwatch.json").read_text())
    save = chunks.save_checkpoint
    monkeypatch.setattr(chunks, "save_checkpoint", lambda path, payload: (saved.append(path.name), save(path, payload)))
    assert main([*command, str(killed)]) == 0
    assert saved == ["chunk-00002.pt"]  # only the chunk in progress was computed again
    built, reference = (load_checkpoint(stage_folder(out, "D_rand") / "data.pt") for out in (killed, whole))
    assert torch.equal(built["images"], reference["images"]) and torch.equal(built["labels"], reference["labels"])
    results = [json.loads((stage_folder(out, "D_rand") / "result.json").read_text()) for out in (killed, whole)]
    timing = ("seconds", "sittings")
    assert [{k: v for k, v in r.items() if k not in timing} for r in results] == [
        {k: v for k, v in results[1].items() if k not in timing}] * 2
    assert [r["sittings"] for r in results] == [2, 1] and first_sitting["sittings"] == 1
    assert results[0]["seconds"] >= first_sitting["seconds"] > 0  # the killed sitting's time is counted
    assert not (folder / "chunks").exists()  # data.pt holds every chunk now


@pytest.fixture(scope="module")
def setting():
    data = planted("train", n_train=300, seed=2)
    config = TrainConfig(model="fast", model_options={"width": 8}, epochs=1, batch_size=100, augment=None)
    return train(config, data, progress=False).model, data.subset(100)


def test_constructions_in_chunks_equal_constructions_in_one_piece(setting, tmp_path):
    """Inversion, and relabelling with augmented copies (whose draws are seeded per batch by the batch's first
    image index), give the same images in chunks of two batches of 16 as in one piece."""
    model, data = setting
    one = features_dataset(model, data, name="D_R", steps=3, step_size=0.1, batch_size=16, progress=False)[0]
    parts = features_dataset(model, data, name="D_R", steps=3, step_size=0.1, batch_size=16, progress=False,
                             checkpoint=tmp_path / "inversion")[0]
    assert torch.equal(one.images, parts.images) and len(list((tmp_path / "inversion").glob("chunk-*.pt"))) == 1
    settings = {"mode": "rand", "eps": 0.5, "steps": 3, "step_size": 0.2, "augmented_copies": 2, "batch_size": 16,
                "progress": False}
    one = relabelled_dataset(model, data, **settings)[0]
    parts = relabelled_dataset(model, data, **settings, checkpoint=tmp_path / "relabel", chunk_batches=2)[0]
    assert torch.equal(one.images, parts.images) and len(list((tmp_path / "relabel").glob("chunk-*.pt"))) == 4
