"""empirical.data: loaders checked against real data, the planted set's ground truth, and batching.

Tests that need a data file skip (with the reason) when it is absent: the CIFAR-10 copies live in
../shared/data beside the repository, Fashion-MNIST in /usr/share/datasets/fashion-mnist.
"""

from __future__ import annotations

import gzip
import io
import math
import pickle
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from empirical import data as D
from empirical.data import Augment, Batches, ImageData

CIFAR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10"
EXACT = CIFAR / "partial_exact" / "cifar10_exact_prefix.npz"
META = CIFAR / "partial_exact" / "batches.meta"
JPEG = CIFAR / "jpeg_q75" / "cifar10_jpeg_q75.npz"
FASHION = Path("/usr/share/datasets/fashion-mnist")


def need(*paths: Path) -> None:
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        pytest.skip(f"data file(s) absent: {', '.join(missing)}")


def images_of(values: list[float] | np.ndarray, shape=(3, 8, 8)) -> torch.Tensor:
    """Constant images, image i filled with values[i]."""
    v = torch.as_tensor(np.asarray(values), dtype=torch.float32)
    return v[:, None, None, None].expand(len(v), *shape).contiguous()


def small_data(n: int = 10, shape=(3, 8, 8), seed: int = 0) -> ImageData:
    g = torch.Generator().manual_seed(seed)
    return ImageData(torch.rand(n, *shape, generator=g), torch.arange(n) % 3, ("a", "b", "c"), "toy")


# --- ImageData -----------------------------------------------------------------------------------

GOOD_X = torch.full((4, 1, 2, 2), 0.5)
GOOD_Y = torch.tensor([0, 1, 2, 1])
BAD_IMAGE_DATA = {
    "pixel below 0": (dict(images=GOOD_X.clone().index_put_((torch.tensor([1]),), torch.tensor(-0.25))), "-0.25"),
    "pixel above 1": (dict(images=GOOD_X.clone().index_put_((torch.tensor([2]),), torch.tensor(1.5))), "1.5"),
    "nan pixel": (dict(images=GOOD_X.clone().index_put_((torch.tensor([0]),), torch.tensor(float("nan")))), "nan"),
    "float64": (dict(images=GOOD_X.double()), "torch.float64"),
    "uint8": (dict(images=(GOOD_X * 255).to(torch.uint8)), "torch.uint8"),
    "3-D images": (dict(images=GOOD_X[:, 0]), "(4, 2, 2)"),
    "no images": (dict(images=GOOD_X[:0], labels=GOOD_Y[:0]), "(0, 1, 2, 2)"),
    "int32 labels": (dict(labels=GOOD_Y.int()), "torch.int32"),
    "label too large": (dict(labels=torch.tensor([0, 1, 12, 1])), "12"),
    "negative label": (dict(labels=torch.tensor([0, -3, 2, 1])), "-3"),
    "labels too short": (dict(labels=GOOD_Y[:3]), "(3,)"),
    "no classes": (dict(classes=()), "()"),
    "duplicate classes": (dict(classes=("a", "b", "a")), "'a', 'b', 'a'"),
    "empty name": (dict(name=" "), "' '"),
    "short source_indices": (dict(source_indices=torch.arange(3)), "(3,)"),
}


@pytest.mark.parametrize("case", BAD_IMAGE_DATA, ids=list(BAD_IMAGE_DATA))
def test_image_data_refuses_bad_input_naming_the_value(case):
    change, needle = BAD_IMAGE_DATA[case]
    kwargs = dict(images=GOOD_X, labels=GOOD_Y, classes=("a", "b", "c"), name="toy") | change
    with pytest.raises(ValueError) as err:
        ImageData(**kwargs)
    assert needle in str(err.value)


def test_image_data_refuses_non_tensors():
    with pytest.raises(TypeError, match="ndarray"):
        ImageData(GOOD_X.numpy(), GOOD_Y, ("a", "b", "c"), "toy")


def test_subset_takes_prefixes_and_indices_and_keeps_provenance():
    data = small_data(10)
    first = data.subset(4)
    assert len(first) == 4 and torch.equal(first.images, data.images[:4])
    picked = data.subset([7, 2, 2])
    assert torch.equal(picked.images, data.images[[7, 2, 2]]) and picked.source_indices.tolist() == [7, 2, 2]
    assert picked.subset([2]).source_indices.tolist() == [2]  # positions in the original, not the subset
    assert data.to("cpu").device == torch.device("cpu") and "toy" in repr(data) and len(repr(data)) < 200


BAD_SUBSETS = {"zero": (0, "0"), "too many": (11, "11"), "index out of range": ([3, 10], "10"),
               "negative index": ([-1], "-1"), "bool mask": ([True, False], "torch.bool"),
               "floats": ([1.5], "torch.float32"), "empty": ([], "(0,)")}


@pytest.mark.parametrize("case", BAD_SUBSETS, ids=list(BAD_SUBSETS))
def test_subset_refuses_bad_indices_naming_them(case):
    which, needle = BAD_SUBSETS[case]
    with pytest.raises(ValueError) as err:
        small_data(10).subset(which)
    assert needle in str(err.value)


# --- registry and splits -------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(D.LOADERS))
def test_every_loader_refuses_an_unknown_split(name):
    with pytest.raises(ValueError, match="'val'"):
        D.LOADERS[name]("val", **({"root": "/nonexistent"} if name == "cifar10" else {}))
    with pytest.raises(ValueError, match="'val'"):
        D.load(name, "val")


def test_load_refuses_unknown_names_and_passes_arguments():
    with pytest.raises(ValueError, match="'imagenet'"):
        D.load("imagenet", "train")
    data = D.load("planted", "test", n_test=30, seed=3)
    assert len(data) == 30 and "seed 3" in data.name


# --- CIFAR-10: official layout, exact prefix, JPEG copy -------------------------------------------


def write_official_folder(root: Path, split: str) -> Path:
    """A cifar-10-batches-py folder holding the exact prefixes, pickled as the official batches are."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    shutil.copy(META, folder / "batches.meta")
    with np.load(EXACT) as npz:
        for batch in D._CIFAR_BATCHES[split]:
            rows = npz[f"{batch}_data"]
            labels = [int(v) for v in npz[f"{batch}_labels"][: len(rows)]]
            content = {b"batch_label": batch.encode(), b"labels": labels, b"data": rows,
                       b"filenames": [f"{i}.png".encode() for i in range(len(rows))]}
            with open(folder / batch, "wb") as f:
                pickle.dump(content, f, protocol=2)
    return folder


@pytest.mark.parametrize("split", ["train", "test"])
def test_cifar10_reads_the_official_format(tmp_path, split):
    need(EXACT, META)
    folder = write_official_folder(tmp_path, split)
    exact = D.cifar10_exact_prefix(split)
    for root in (tmp_path, folder):  # the folder or its parent
        data = D.cifar10(split, root)
        assert torch.equal(data.images, exact.images) and torch.equal(data.labels, exact.labels)
        assert data.classes == D.CIFAR10_CLASSES and data.name == "CIFAR-10"
    # The layout in words: row k holds R, G, B planes of 32 x 32, each row-major.
    with np.load(EXACT) as npz:
        row = npz[f"{D._CIFAR_BATCHES[split][0]}_data"][5].astype(np.float32) / 255
    for c, i, j in [(0, 0, 0), (1, 3, 17), (2, 31, 30), (0, 12, 31)]:
        assert exact.images[5, c, i, j].item() == row[c * 1024 + i * 32 + j]


def test_cifar10_exact_prefix_counts_and_provenance():
    need(EXACT)
    train, test = D.cifar10_exact_prefix("train"), D.cifar10_exact_prefix("test")
    assert (len(train), len(test)) == (5170, 1017) and train.shape == (3, 32, 32)
    assert train.source_indices[1101].item() == 1101 and train.source_indices[1102].item() == 10_000
    assert "exact prefix" in train.name


def test_cifar10_refuses_foreign_pickles(tmp_path):
    need(META)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    shutil.copy(META, folder / "batches.meta")
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": print, b"labels": []}))
    with pytest.raises(ValueError, match="refusing to load builtins.print"):
        D.cifar10("test", tmp_path)


def test_cifar10_never_downloads_unless_asked(tmp_path):
    with pytest.raises(FileNotFoundError, match="download=True"):
        D.cifar10("train", tmp_path)
    try:
        import torchvision  # noqa: F401
    except ImportError:
        with pytest.raises(ModuleNotFoundError, match="torchvision"):
            D.cifar10("train", tmp_path, download=True)


@pytest.mark.parametrize("split", ["train", "test"])
def test_jpeg_copy_matches_the_exact_prefix_within_its_documented_error(split):
    """SOURCE.md: mean absolute error 5.8/255 and at most 13/255 per image; about 70 for a wrong pairing."""
    need(EXACT, JPEG)
    exact = D.cifar10_exact_prefix(split)
    jpeg = D.cifar10_jpeg(split, indices=exact.source_indices, cache=False)
    assert jpeg.name == "CIFAR-10 (JPEG q75 re-encode)" and torch.equal(jpeg.labels, exact.labels)
    error = (jpeg.images - exact.images).abs() * 255
    assert 5.0 < error.mean().item() < 6.5
    assert error.mean((1, 2, 3)).max().item() <= 13.0
    # The comparison can fail: swapped channels (BGR) or transposed images are far off.
    assert ((jpeg.images - exact.images.flip(1)).abs() * 255).mean().item() > 15
    assert ((jpeg.images - exact.images.transpose(2, 3)).abs() * 255).mean().item() > 30


@pytest.mark.slow
def test_jpeg_copy_decodes_completely_and_is_balanced(tmp_path):
    need(JPEG)
    for split, n in [("train", 50_000), ("test", 10_000)]:
        data = D.cifar10_jpeg(split, cache_dir=tmp_path)
        assert len(data) == n and data.shape == (3, 32, 32)
        assert torch.bincount(data.labels).tolist() == [n // 10] * 10


def write_fake_jpeg_npz(path: Path, n: int = 6, size: int = 32) -> np.ndarray:
    """An npz in the shared copy's format holding n random JPEGs per split; returns the test pixels."""
    from PIL import Image

    rng = np.random.default_rng(0)
    arrays, decoded = {}, None
    for split in ("train", "test"):
        blobs = []
        for _ in range(n):
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, "JPEG", quality=75)
            blobs.append(np.frombuffer(buf.getvalue(), np.uint8))
        arrays[f"{split}_jpeg"] = np.concatenate(blobs)
        arrays[f"{split}_offsets"] = np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype(np.int64)
        arrays[f"{split}_labels"] = (np.arange(n) % 10).astype(np.uint8)
        decoded = [np.asarray(Image.open(io.BytesIO(b.tobytes())).convert("RGB")) for b in blobs]
    np.savez(path, **arrays)
    return np.stack(decoded).transpose(0, 3, 1, 2)


def test_jpeg_decoding_is_cached_by_content(tmp_path, monkeypatch):
    npz, cache = tmp_path / "fake.npz", tmp_path / "cache"
    pixels = write_fake_jpeg_npz(npz)
    first = D.cifar10_jpeg("test", npz, cache_dir=cache)
    assert np.array_equal((first.images * 255).round().to(torch.uint8).numpy(), pixels)
    assert len(list(cache.glob("fake-*-test.npy"))) == 1

    def no_decoding(*args):
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(D.cifar_jpeg, "_decode_jpegs", no_decoding)  # where cifar10_jpeg looks it up
    assert torch.equal(D.cifar10_jpeg("test", npz, cache_dir=cache).images, first.images)
    assert torch.equal(D.cifar10_jpeg("test", npz, cache_dir=cache, indices=[4, 1]).images, first.images[[4, 1]])
    monkeypatch.undo()
    write_fake_jpeg_npz(npz, n=5)  # new content, new key: decoded afresh, never the stale cache
    assert len(D.cifar10_jpeg("test", npz, cache_dir=cache)) == 5
    assert len(list(cache.glob("fake-*-test.npy"))) == 2
    D.cifar10_jpeg("train", npz, cache_dir=tmp_path / "unused", cache=False)
    assert not (tmp_path / "unused").exists()


def test_jpeg_loader_refuses_bad_files(tmp_path):
    npz = tmp_path / "small.npz"
    write_fake_jpeg_npz(npz, size=16)
    with pytest.raises(ValueError, match="JPEG 0 is 16x16"):
        D.cifar10_jpeg("test", npz, cache=False)
    with np.load(npz) as stored:
        arrays = dict(stored)
    arrays["test_offsets"] = arrays["test_offsets"][::-1].copy()
    np.savez(npz, **arrays)
    with pytest.raises(ValueError, match="test_offsets"):
        D.cifar10_jpeg("test", npz, cache=False)


# --- Fashion-MNIST -------------------------------------------------------------------------------


def test_fashion_mnist_shapes_ranges_and_balance():
    need(FASHION / "train-images-idx3-ubyte.gz")
    for split, n in [("train", 60_000), ("test", 10_000)]:
        data = D.fashion_mnist(split)
        assert len(data) == n and data.shape == (1, 28, 28) and data.images.dtype == torch.float32
        assert data.images.min().item() == 0.0 and data.images.max().item() == 1.0
        assert torch.bincount(data.labels).tolist() == [n // 10] * 10
        assert data.classes[0] == "T-shirt/top" and data.name == "Fashion-MNIST"


def write_idx(path: Path, magic: int, array: np.ndarray, extra: bytes = b"") -> None:
    header = struct.pack(f">I{array.ndim}I", magic, *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes() + extra)


def write_fake_fashion(root: Path, images_magic: int = 2051, extra: bytes = b"") -> np.ndarray:
    images = np.arange(3 * 28 * 28, dtype=np.uint32).reshape(3, 28, 28) % 256
    for prefix in ("train", "t10k"):
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", images_magic, images, extra)
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", 2049, np.array([9, 0, 4]))
    return images


def test_fashion_mnist_parses_idx_headers(tmp_path):
    images = write_fake_fashion(tmp_path)
    data = D.fashion_mnist("test", tmp_path)
    assert data.labels.tolist() == [9, 0, 4]
    assert np.array_equal((data.images[:, 0] * 255).round().numpy(), images)


BAD_IDX = {"wrong magic": (dict(images_magic=2049), "2049"),
           "foreign magic": (dict(images_magic=0x12345678), "0x12345678"),
           "trailing bytes": (dict(extra=b"\x00\x01"), "2354")}


@pytest.mark.parametrize("case", BAD_IDX, ids=list(BAD_IDX))
def test_fashion_mnist_refuses_bad_idx_headers(tmp_path, case):
    change, needle = BAD_IDX[case]
    write_fake_fashion(tmp_path, **change)
    with pytest.raises(ValueError) as err:
        D.fashion_mnist("train", tmp_path)
    assert needle in str(err.value)


# --- planted features ----------------------------------------------------------------------------

SMALL = dict(n_train=4000, n_test=4000)


@pytest.fixture(scope="module")
def planted():
    features = D.planted_features(**SMALL)
    data, truth = features.sample("test")
    return features, data, truth


def test_planted_is_deterministic_given_the_seed():
    a, b, c = (D.planted("train", n_train=200, seed=s) for s in (1, 1, 2))
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)
    assert torch.equal(D.planted_features(seed=1).robust, D.planted_features(seed=1, n_train=7).robust)


def test_planted_templates_are_orthonormal_and_orthogonal_to_the_background(planted):
    features, _, _ = planted
    k = features.config.num_classes
    r, n = features.robust.reshape(k, -1).double(), features.nonrobust.reshape(k, -1).double()
    both = torch.cat([r, n])
    assert torch.allclose(both @ both.T, torch.eye(2 * k, dtype=torch.float64), atol=1e-6)
    assert features.robust.sum((2, 3)).abs().max() < 1e-5  # zero mean in every channel
    assert features.nonrobust.sum((2, 3)).abs().max() < 1e-5


def dirichlet_ratio(t: torch.Tensor) -> torch.Tensor:
    """sum of squared (periodic) neighbour differences / squared norm, per template."""
    diff = (t - t.roll(1, -1)) ** 2 + (t - t.roll(1, -2)) ** 2
    return diff.sum((1, 2, 3)) / (t**2).sum((1, 2, 3))


def test_planted_templates_live_in_their_frequency_bands(planted):
    features, _, _ = planted
    size = features.config.size
    for kind, t in [("robust", features.robust), ("nonrobust", features.nonrobust)]:
        power = torch.fft.fft2(t.double()).abs() ** 2
        inside = power[..., torch.from_numpy(D._band_mask(size, kind))].sum() / power.sum()
        assert inside.item() > 1 - 1e-9, kind
    # Smooth vs fine: a wave of k cycles per axis has ratio 4 sin^2(pi k / size) per axis.
    assert dirichlet_ratio(features.robust).max() <= 2 * 4 * math.sin(math.pi * 2 / 16) ** 2 + 1e-4
    assert dirichlet_ratio(features.nonrobust).min() >= 2 * 4 * math.sin(math.pi * 4 / 16) ** 2 - 1e-4


def test_planted_parts_have_the_stated_norms(planted):
    """Class signal a r_y has norm 2 (4 x an l2 budget of 0.5); b n_y has norm 0.2 (below it)."""
    features, data, truth = planted
    cfg = features.config
    assert torch.allclose(features.robust.flatten(1).norm(dim=1), torch.ones(10), atol=1e-6)
    assert torch.allclose(features.nonrobust.flatten(1).norm(dim=1), torch.ones(10), atol=1e-6)
    assert (cfg.robust_norm, cfg.nonrobust_norm) == (2.0, 0.2)
    on = torch.nn.functional.one_hot(data.labels, 10).bool()
    for coef, norm, noise in [(truth.robust, 2.0, cfg.robust_noise), (truth.nonrobust, 0.2, cfg.nonrobust_noise)]:
        assert abs(coef[on].mean().item() - norm) < 4 * noise / math.sqrt(len(data))
        assert abs(coef[~on].mean().item()) < 4 * noise / math.sqrt(9 * len(data))
        assert abs(coef[~on].std().item() / noise - 1) < 0.03


def test_planted_part_accuracies_are_in_range_and_match_the_closed_form(planted):
    features, data, _ = planted
    content = features.content(data)
    n = len(data)
    for part, lo, hi in [("robust", 0.75, 0.90), ("nonrobust", 0.98, 1.0)]:
        predicted = content.robust_class if part == "robust" else content.nonrobust_class
        measured = (predicted == data.labels).double().mean().item()
        expected = features.config.accuracy(part)
        assert lo <= measured <= hi and lo <= expected <= hi, (part, measured, expected)
        assert abs(measured - expected) < 4 * math.sqrt(expected * (1 - expected) / n) + 1e-3, (part, measured)
    # The check can fail: another seed's templates read chance.
    other = D.planted_features(seed=99).content(data)
    assert (other.robust_class == data.labels).double().mean().item() < 0.2


def test_template_content_recovers_the_planted_coefficients(planted):
    features, data, truth = planted
    error = features.content(data).robust - truth.robust, features.content(data).nonrobust - truth.nonrobust
    for e in error:  # only the pixel noise (sigma) and rare clipping remain
        assert abs(e.std().item() - features.config.pixel_noise) < 0.002 and e.abs().max() < 0.15
    clean_features = D.planted_features(pixel_noise=0.0, n_test=500)
    clean, exact = clean_features.sample("test")
    unclipped = ((clean.images > 0) & (clean.images < 1)).flatten(1).all(1)
    assert unclipped.double().mean() > 0.9
    content = clean_features.content(clean.images[unclipped])
    assert torch.allclose(content.robust, exact.robust[unclipped], atol=1e-5)
    assert torch.allclose(content.nonrobust, exact.nonrobust[unclipped], atol=1e-5)


def test_planted_clipping_is_negligible(planted):
    for data in (planted[1], D.planted("train", seed=5, n_train=2000)):
        clipped = ((data.images == 0) | (data.images == 1)).double().mean().item()
        assert clipped < 1e-3


def test_planted_classes_are_balanced_and_splits_differ(planted):
    _, data, _ = planted
    assert torch.bincount(data.labels).tolist() == [400] * 10
    assert not torch.equal(D.planted("train", **SMALL).images, data.images)


def test_an_l2_step_of_half_flips_the_nonrobust_class_but_not_the_robust_one(planted):
    """The design claim: eps = 0.5 swaps the non-robust feature, but rarely the robust one."""
    features, data, _ = planted
    y = data.labels
    t = (y + 1) % features.config.num_classes
    base = features.content(data)
    for kind, templates in [("nonrobust", features.nonrobust), ("robust", features.robust)]:
        step = 0.5 * (templates[t] - templates[y]) / math.sqrt(2)  # l2 norm 0.5 per image
        after = features.content(data.images + step)
        moved = (getattr(after, f"{kind}_class") == t).double().mean().item()
        assert (moved > 0.99) if kind == "nonrobust" else (moved < 0.25), (kind, moved)
        assert torch.allclose(after.robust, base.robust + features.content(step).robust, atol=1e-4)


BAD_PLANTED = {"unknown field": (dict(colour=3), "colour"), "one class": (dict(num_classes=1), "1"),
               "tiny images": (dict(size=4), "4"), "negative noise": (dict(pixel_noise=-0.1), "-0.1"),
               "white background": (dict(background=1.0), "1.0"),
               "too many classes": (dict(num_classes=100, channels=1, size=8), "100"),
               "float count": (dict(n_train=10.5), "10.5")}


@pytest.mark.parametrize("case", BAD_PLANTED, ids=list(BAD_PLANTED))
def test_planted_refuses_bad_parameters_naming_them(case):
    change, needle = BAD_PLANTED[case]
    with pytest.raises(ValueError) as err:
        D.planted("train", **change)
    assert needle in str(err.value)


def test_template_content_refuses_wrong_shapes(planted):
    with pytest.raises(ValueError, match=r"\(2, 3, 8, 8\)"):
        planted[0].content(torch.zeros(2, 3, 8, 8))


# --- batching ------------------------------------------------------------------------------------


def index_data(n: int = 23, shape=(3, 8, 8)) -> ImageData:
    """Image i is the constant i / (n - 1), so every output pixel tells which image it came from."""
    return ImageData(images_of(np.arange(n) / (n - 1), shape), torch.arange(n) % 2, ("a", "b"), "indexed")


def seen(batches) -> list[float]:
    out = []
    for x, _ in batches:
        out += x.amax((1, 2, 3)).tolist()  # zero padding only adds zeros
    return out


@pytest.mark.parametrize("augment", [None, Augment(padding=2), Augment(padding=2, pad_mode="reflect")])
@pytest.mark.parametrize("batch_size", [5, 23, 40])
def test_every_example_appears_once_per_epoch(augment, batch_size):
    data = index_data()
    batches = Batches(data, batch_size, shuffle=True, augment=augment, seed=3)
    for _ in range(2):
        values = sorted(round(v * 22) for v in seen(batches))
        assert values == list(range(23))
    if batch_size <= 23:
        kept = sorted(round(v * 22) for v in seen(Batches(data, batch_size, shuffle=True, drop_last=True)))
        assert len(kept) == 23 // batch_size * batch_size and len(set(kept)) == len(kept)


def test_plain_batches_are_the_data_in_order_without_copies():
    data = small_data(10)
    batches = list(Batches(data, 4))
    assert [len(x) for x, _ in batches] == [4, 4, 2] and len(Batches(data, 4)) == 3
    assert torch.equal(torch.cat([x for x, _ in batches]), data.images)
    assert torch.equal(torch.cat([y for _, y in batches]), data.labels)
    assert batches[0][0].untyped_storage().data_ptr() == data.images.untyped_storage().data_ptr()
    assert len(Batches(data, 4, drop_last=True)) == 2


def test_same_seed_same_batches_and_epochs_differ():
    data = small_data(30)

    def run(seed, epochs=2):
        b = Batches(data, 8, shuffle=True, augment=Augment(padding=2), seed=seed)
        return [torch.cat([x for x, _ in b]) for _ in range(epochs)]

    a, b, c = run(7), run(7), run(8)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.equal(a[0], a[1]) and not torch.equal(a[0], c[0])
    replay = torch.cat([x for x, _ in Batches(data, 8, shuffle=True, augment=Augment(padding=2), seed=7).epoch(1)])
    assert torch.equal(replay, a[1])


def shifted(image: torch.Tensor, dy: int, dx: int, p: int, mode: str) -> torch.Tensor:
    """The crop at (dy, dx) of the padded image, by slicing."""
    padded = torch.nn.functional.pad(image[None], (p, p, p, p), mode="constant" if mode == "zeros" else "reflect")[0]
    return padded[:, dy : dy + image.shape[1], dx : dx + image.shape[2]]


@pytest.mark.parametrize("mode", ["zeros", "reflect"])
def test_crops_are_true_shifts_of_the_padded_image_and_flips_are_flips(mode):
    data = small_data(12, shape=(3, 8, 10))
    augment = Augment(padding=3, pad_mode=mode)
    dy, dx = torch.arange(12) % 7, (torch.arange(12) * 5) % 7
    flip = torch.arange(12) % 3 == 0
    out = augment.apply(data.images, dy, dx, flip)
    for i in range(12):
        want = shifted(data.images[i], dy[i].item(), dx[i].item(), 3, mode)
        assert torch.equal(out[i], want.flip(-1) if flip[i] else want)
    zero = torch.zeros(12, dtype=torch.long)
    flipped = Augment(padding=0).apply(data.images, zero, zero, flip)
    assert torch.equal(flipped[flip], data.images[flip].flip(-1)) and torch.equal(flipped[~flip], data.images[~flip])


def test_augmented_batches_are_crops_or_flipped_crops_of_their_images():
    data = small_data(16)
    p = 2
    hits = {"flip": 0, "shift": 0}
    for k, (x, y) in enumerate(Batches(data, 8, augment=Augment(padding=p), seed=1)):
        assert x.shape == (8, 3, 8, 8) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
        assert torch.equal(y, data.labels[8 * k : 8 * k + 8])
        for i in range(8):
            original = data.images[8 * k + i]
            offsets = [(dy, dx) for dy in range(2 * p + 1) for dx in range(2 * p + 1)]
            crops = {(dy, dx): shifted(original, dy, dx, p, "zeros") for dy, dx in offsets}
            matches = [(dy, dx, f) for (dy, dx), crop in crops.items() for f in (False, True)
                       if torch.equal(x[i], crop.flip(-1) if f else crop)]
            assert len(matches) == 1
            hits["flip"] += matches[0][2]
            hits["shift"] += matches[0][:2] != (p, p)
    assert 0 < hits["flip"] < 16 and hits["shift"] > 8


BAD_BATCHES = {"zero batch": (dict(batch_size=0), "0"), "float batch": (dict(batch_size=2.5), "2.5"),
               "bool batch": (dict(batch_size=True), "True"), "negative seed": (dict(seed=-1), "-1"),
               "drop everything": (dict(batch_size=11, drop_last=True), "11")}


@pytest.mark.parametrize("case", BAD_BATCHES, ids=list(BAD_BATCHES))
def test_batches_refuse_bad_arguments_naming_them(case):
    change, needle = BAD_BATCHES[case]
    kwargs = dict(batch_size=4) | change
    batch_size = kwargs.pop("batch_size")
    with pytest.raises(ValueError) as err:
        Batches(small_data(10), batch_size, **kwargs)
    assert needle in str(err.value)


BAD_AUGMENTS = {"negative padding": (dict(padding=-1), "-1"), "wrap mode": (dict(pad_mode="wrap"), "'wrap'"),
                "flip as int": (dict(flip=1), "1")}


@pytest.mark.parametrize("case", BAD_AUGMENTS, ids=list(BAD_AUGMENTS))
def test_augment_refuses_bad_settings_naming_them(case):
    change, needle = BAD_AUGMENTS[case]
    with pytest.raises(ValueError) as err:
        Augment(**change)
    assert needle in str(err.value)


def test_batching_refuses_bad_types_and_oversized_reflection():
    with pytest.raises(TypeError, match="ndarray"):
        Batches(np.zeros((2, 3, 8, 8)), 2)
    with pytest.raises(ValueError, match="reflect padding 8"):
        next(iter(Batches(small_data(4), 2, augment=Augment(padding=8, pad_mode="reflect"))))
    with pytest.raises(ValueError, match="-2"):
        Batches(small_data(4), 2).epoch(-2)


@pytest.mark.gpu
def test_gpu_batches_equal_cpu_batches():
    data = small_data(50)
    make = lambda d: Batches(d, 16, shuffle=True, augment=Augment(padding=2), seed=4)  # noqa: E731
    for (xc, yc), (xg, yg) in zip(make(data), make(data.to("cuda"))):
        assert xg.is_cuda and yg.is_cuda
        assert torch.equal(xc, xg.cpu()) and torch.equal(yc, yg.cpu())
    planted = D.planted("test", n_test=100)
    features = D.planted_features()
    on_gpu = features.content(planted.to("cuda")).robust
    assert on_gpu.is_cuda and torch.allclose(on_gpu.cpu(), features.content(planted).robust, atol=1e-4)


def test_agreement_on_natural_images_is_each_parts_closed_form_accuracy_and_template_norm(planted):
    """agreement(): the robust part points to the label as often as the Bayes rule from it alone
    (PlantedConfig.accuracy), the non-robust part almost always; the label's coefficients are a and b."""
    features, data, _ = planted
    found, config = features.agreement(data, data.labels), features.config
    se = math.sqrt(0.25 / len(data))
    assert abs(found["robust_points_to_label"] - config.accuracy("robust")) < 4 * se
    assert found["nonrobust_points_to_label"] > 0.999
    assert found["robust_coefficient"] == pytest.approx(config.robust_norm, abs=0.05)
    assert found["nonrobust_coefficient"] == pytest.approx(config.nonrobust_norm, abs=0.005)
    shifted = features.agreement(data, (data.labels + 1) % config.num_classes)
    assert shifted["robust_points_to_label"] < 0.1 and shifted["nonrobust_points_to_label"] < 0.001
    with pytest.raises(ValueError, match=r"labels must have shape \(4000,\)"):
        features.agreement(data, data.labels[:10])
