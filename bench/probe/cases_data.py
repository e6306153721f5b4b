"""Crafted datasets: IDX files with wrong magic, truncated or huge declared sizes, image folders with loops."""
from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import fixtures
from probe import Case

FM = ["train", "model=mlp", "model.hidden=[16]", "dataset=fashionmnist", "dataset.root=data", "dataset.system_dirs=[]",
      "trainer.epochs=1", "trainer.batch_size=16", "device=cpu", "trainer.progress=false"]
TRI, TRL, TEI, TEL = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                      "t10k-labels-idx1-ubyte")


def fm(mutate=None):
    def setup(ctx) -> None:
        root = fixtures.write_fashion(ctx.cwd / "data")
        if mutate:
            mutate(root, ctx)
    return setup


def put(name: str, data):
    def m(root: Path, ctx) -> None:
        p = root / name
        if p.exists() or p.is_symlink():
            p.unlink()
        if isinstance(data, bytes):
            p.write_bytes(data)
        elif data == "dir":
            p.mkdir()
        elif data == "loop":
            os.symlink(p.name, p)
        elif data == "fifo":
            os.mkfifo(p)
        elif data == "missing":
            pass
        elif data.startswith("->"):
            os.symlink(data[2:], p)
    return m


def payload_pickle(ctx) -> bytes:
    class P:
        def __reduce__(self):
            return (exec, (f"open({str(ctx.marker)!r}, 'w').write('pwned')",))
    return pickle.dumps(P())


def cases() -> list[Case]:
    out: list[Case] = []
    add = out.append
    add(Case("data-fm-valid", "valid", FM, expect=(0,), setup=fm(), timeout=240))
    add(Case("data-fm-valid-gz", "valid", FM, expect=(0,), timeout=240,
             setup=lambda ctx: fixtures.write_fashion(ctx.cwd / "data", gz=True)))
    img = fixtures.idx_images(96)
    lab = fixtures.idx_labels(96)
    bad = {
        "magic-images": (TRI, struct.pack(">I", 0x12345678) + img[4:]),
        "magic-labels": (TRL, struct.pack(">I", 0x00000803) + lab[4:]),
        "truncated-images": (TRI, img[: len(img) // 2]),
        "truncated-labels": (TRL, lab[:20]),
        "huge-count": (TRI, struct.pack(">IIII", 0x803, 2**31 - 1, 28, 28) + img[16:]),
        "huge-dims": (TRI, struct.pack(">IIII", 0x803, 96, 65535, 65535) + img[16:]),
        "zero-dims": (TRI, struct.pack(">IIII", 0x803, 96, 0, 0)),
        "wrong-size": (TRI, fixtures.idx_images(96, 32, 32)),
        "count-mismatch": (TRL, fixtures.idx_labels(50)),
        "label-255": (TRL, struct.pack(">II", 0x801, 96) + bytes([255] * 96)),
        "test-label-oor": (TEL, struct.pack(">II", 0x801, 32) + bytes([10] * 32)),
        "empty-images": (TRI, b""),
        "float-type": (TRI, struct.pack(">IIII", 0x00000D03, 96, 28, 28) + img[16:]),
        "images-dir": (TRI, "dir"),
        "images-loop": (TRI, "loop"),
        "images-fifo": (TRI, "fifo"),
        "images-devzero": (TRI, "->/dev/zero"),
        "test-missing": (TEL, "missing"),
    }
    for name, (fname, data) in bad.items():
        add(Case(f"data-idx-{name}", "crafted-data", FM, setup=fm(put(fname, data)), msg=(fname, "data"),
                 timeout=120))
    gzbad = {"gz-garbage": os.urandom(3000), "gz-truncated": gzip.compress(img)[:500],
             "gz-bomb-header": gzip.compress(struct.pack(">IIII", 0x803, 2**31 - 1, 28, 28))}
    for name, data in gzbad.items():
        def setup(ctx, _d=data):
            root = fixtures.write_fashion(ctx.cwd / "data")
            (root / TRI).unlink()
            (root / (TRI + ".gz")).write_bytes(_d)
        add(Case(f"data-idx-{name}", "crafted-data", FM, setup=setup, msg=(TRI, "data"), timeout=120))
    # the same broken file, read by other commands
    for cmd in (["lr-find", *FM[1:], "lr_find.steps=10"],):
        add(Case("data-lrfind-magic", "crafted-data", cmd, setup=fm(put(TRI, bad["magic-images"][1])),
                 msg=(TRI,), timeout=120))
    # image folders
    IF = ["train", "model=mlp", "model.hidden=[16]", "dataset=imagefolder", "dataset.root=imgs", "trainer.epochs=1",
          "trainer.batch_size=4", "device=cpu", "trainer.progress=false", "dataset.image_size=[16,16]",
          "dataset.num_workers=0"]

    def imgs(mutate=None):
        def setup(ctx):
            root = fixtures.write_imagefolder(ctx.cwd / "imgs")
            if mutate:
                mutate(root, ctx)
        return setup

    add(Case("data-if-valid", "valid", IF, expect=(0,), setup=imgs(), timeout=240))
    add(Case("data-if-symlink-loop", "crafted-data", IF, expect=(0, 2), note="0 only if the loop is not followed",
             setup=imgs(lambda r, c: os.symlink("..", r / "train" / "a" / "loop")), msg=("loop", "symlink"),
             timeout=240, post=lambda ctx: loop_followed(ctx)))
    add(Case("data-if-symlink-outside", "crafted-data", IF, expect=(0, 2),
             setup=imgs(lambda r, c: os.symlink("/", r / "train" / "a" / "root")), timeout=240, msg=("root",)))
    add(Case("data-if-one-class", "crafted-data", IF,
             setup=imgs(lambda r, c: __import__("shutil").rmtree(r / "train" / "b")), msg=("class",), timeout=120))
    add(Case("data-if-no-train", "crafted-data", IF,
             setup=imgs(lambda r, c: __import__("shutil").rmtree(r / "train")), msg=("train",), timeout=120))
    add(Case("data-if-test-mismatch", "crafted-data", IF,
             setup=imgs(lambda r, c: (r / "test" / "b").rename(r / "test" / "c")), msg=("class", "test"), timeout=120))
    add(Case("data-if-corrupt", "crafted-data", IF, expect=(0, 2),
             setup=imgs(lambda r, c: (r / "train" / "a" / "0.png").write_bytes(b"\x89PNG garbage")), timeout=240))
    add(Case("data-if-all-corrupt", "crafted-data", IF,
             setup=imgs(lambda r, c: [p.write_bytes(b"junk") for p in (r / "train").rglob("*.png")]),
             msg=("image",), timeout=120))
    add(Case("data-if-png-bomb", "crafted-data", IF, expect=(0, 2), timeout=240,
             setup=imgs(lambda r, c: (r / "train" / "a" / "0.png").write_bytes(png_header(100000, 100000)))))
    add(Case("data-if-fifo", "crafted-data", IF, expect=(0, 2), timeout=120,
             setup=imgs(lambda r, c: os.mkfifo(r / "train" / "a" / "pipe.png"))))
    add(Case("data-if-devzero", "crafted-data", IF, expect=(0, 2), timeout=120,
             setup=imgs(lambda r, c: os.symlink("/dev/zero", r / "train" / "a" / "zero.png"))))
    add(Case("data-if-root-file", "crafted-data", [*IF[:4], "dataset.root=/etc/passwd", *IF[5:]],
             msg=("/etc/passwd",), timeout=120))
    add(Case("data-if-image-size-0", "bad-value", [*IF[:-2], "dataset.image_size=[0,0]", IF[-1]],
             setup=imgs(), msg=("image_size",), timeout=120))
    add(Case("data-if-memory-limit-neg", "bad-value", [*IF, "dataset.memory_limit_mb=-1"], setup=imgs(),
             msg=("memory_limit_mb",), timeout=120))
    add(Case("data-if-workers-neg", "bad-value", [*IF[:-1], "dataset.num_workers=-1"], setup=imgs(),
             msg=("num_workers",), timeout=120))
    # CIFAR-10 batches are pickles: a payload must not run
    CF = ["train", "model=mlp", "model.hidden=[16]", "dataset=cifar10", "dataset.root=data", "trainer.epochs=1",
          "device=cpu"]

    def cifar(kind):
        def setup(ctx):
            d = ctx.cwd / "data" / "cifar-10-batches-py"
            d.mkdir(parents=True)
            for n in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"]:
                if kind == "payload":
                    (d / n).write_bytes(payload_pickle(ctx))
                elif kind == "garbage":
                    (d / n).write_bytes(os.urandom(1000))
                elif kind == "wrongtype":
                    (d / n).write_bytes(pickle.dumps({b"data": "abc", b"labels": 5}))
                elif kind == "hugeshape":
                    (d / n).write_bytes(pickle.dumps({b"data": [[0] * 10], b"labels": [1]}))
        return setup

    for kind in ("payload", "garbage", "wrongtype", "hugeshape"):
        add(Case(f"data-cifar-{kind}", "crafted-data", CF, setup=cifar(kind), msg=("data_batch", "cifar"),
                 timeout=120))
    # predict inputs
    PR = ["predict", "ckpt=runs/shared", "device=cpu"]

    def pr(make):
        def setup(ctx):
            fixtures.copy_run(ctx.base["fmnist"], ctx.cwd, "runs/shared")
            import shutil
            shutil.copytree(ctx.base["fmnist_data"], ctx.cwd / "data")
            make(ctx)
        return setup

    preds = {
        "missing": ("inputs=nosuch.png", lambda c: None, ("nosuch.png",)),
        "empty-dir": ("inputs=empty", lambda c: (c.cwd / "empty").mkdir(), ("empty",)),
        "npy-pickle": ("inputs=x.npy", lambda c: (c.cwd / "x.npy").write_bytes(
            b"\x93NUMPY\x01\x00v\x00{'descr': '|O', 'fortran_order': False, 'shape': (1,), }" + b" " * 50 + b"\n"
            + payload_pickle(c)), ("x.npy",)),
        "pt-pickle": ("inputs=x.pt", lambda c: (c.cwd / "x.pt").write_bytes(payload_pickle(c)), ("x.pt",)),
        "idx-huge": ("inputs=x.idx", lambda c: (c.cwd / "x.idx").write_bytes(
            struct.pack(">IIII", 0x803, 2**31 - 1, 28, 28)), ("x.idx",)),
        "idx-magic-x": ("inputs=x-ubyte", lambda c: (c.cwd / "x-ubyte").write_bytes(b"\x00\x00\x99\x03" + bytes(20)),
                      ("x-ubyte",)),
        "glob-none": ("inputs=zz*.png", lambda c: None, ("zz*.png",)),
        "dir-loop": ("inputs=d", lambda c: ((c.cwd / "d").mkdir(), os.symlink(".", c.cwd / "d" / "loop")),
                     ("d",)),
        "png-corrupt": ("inputs=bad.png", lambda c: (c.cwd / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nxx"),
                        ("bad.png",)),
        "topk-0": ("inputs=a.png topk=0", lambda c: fixtures.write_png(c.cwd / "a.png"), ("topk",)),
        "topk-big": ("inputs=a.png topk=99999999999999999999", lambda c: fixtures.write_png(c.cwd / "a.png"),
                     ("topk",)),
        "topk-abc": ("inputs=a.png topk=abc", lambda c: fixtures.write_png(c.cwd / "a.png"), ("topk",)),
        "format-bad": ("inputs=a.png format=xml", lambda c: fixtures.write_png(c.cwd / "a.png"), ("format",)),
        "out-devnull": ("inputs=a.png out=/dev/null", lambda c: fixtures.write_png(c.cwd / "a.png"),
                        ("/dev/null", "out")),
        "out-dir": ("inputs=a.png out=.", lambda c: fixtures.write_png(c.cwd / "a.png"), ("out",)),
        "no-inputs": ("", lambda c: None, ("inputs",)),
    }
    for name, (args, make, msg) in preds.items():
        add(Case(f"predict-{name}", "crafted-data", [*PR, *args.split()], setup=pr(make), msg=msg, timeout=120))
    add(Case("predict-valid", "valid", [*PR, "inputs=a.png"], expect=(0,), timeout=150,
             setup=pr(lambda c: fixtures.write_png(c.cwd / "a.png"))))
    return out


def png_header(w: int, h: int) -> bytes:
    import zlib

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b"")


def loop_followed(ctx) -> list[str]:
    """The folder has 12 training images; more in the log means the loop was followed."""
    import re

    for log in ctx.cwd.glob("runs/*/train.log"):
        text = log.read_text(errors="replace")
        # "(train 11 / val 1 / test 12)": train and val come from train/ (not "46 samples/s", a throughput)
        for m in re.finditer(r"train (\d+) / val (\d+)", text):
            if int(m.group(1)) + int(m.group(2)) > 12:
                return [f"symlink loop followed: the log counts {m.group(0)!r} (the folder has 12 training images)"]
        for m in re.finditer(r"(\d[\d,]*) (?:training )?(?:images|samples)(?!/s)", text):
            if int(m.group(1).replace(",", "")) > 12:
                return [f"symlink loop followed: the log counts {m.group(0)!r} (the folder has 12 training images)"]
    return []
