"""`alae metrics RUN`: FID of generations and reconstructions, PPL in Z and W, LPIPS of reconstructions.

  fid          generations of the EMA model (no truncation) against as many training images
  fid_rec      reconstructions G(E(x)) of held-out images against those images
  fid_real     the training images against the held-out images: the FID a perfect model
               would get with this many images, the floor to read fid and fid_rec against
  ppl_zfull, ppl_zend, ppl_wfull, ppl_wend   perceptual path length (alae.metrics.ppl)
  lpips_rec    mean LPIPS-VGG16 between held-out images and their reconstructions

`num` images (pairs for PPL) per metric, capped by the data available; the paper uses 50k
for FID and StyleGAN 100k for PPL. Batches are split across processes under torchrun and
their sums combined. Real-data statistics are cached (alae.metrics.fid). MLP runs get the
metrics defined for them: fid, fid_rec and lpips_rec on 28x28 digits.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from tqdm import tqdm

from .. import dist
from ..data import source
from ..data.sets import ImageSet, array_set, open_set
from ..device import resolve_device
from ..draws import derived_seed
from ..errors import UserError
from ..model import load
from ..run import Run
from . import fid, ppl
from .inception import Inception

if TYPE_CHECKING:
    from .lpips import LPIPS

STYLE_METRICS = ("fid", "fid_rec", "fid_real", "ppl_zfull", "ppl_zend", "ppl_wfull", "ppl_wend", "lpips_rec")
MLP_METRICS = ("fid", "fid_rec", "fid_real", "lpips_rec")


def parse(names: str, style: bool) -> list[str]:
    allowed = STYLE_METRICS if style else MLP_METRICS
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    for name in chosen:
        if name not in allowed:
            kind = "style" if style else "MLP"
            raise UserError(f"unknown metric {name!r} for a {kind} run (choose from {', '.join(allowed)})")
    if not chosen:
        raise UserError("--metrics names no metric")
    return chosen


def my_batches(total: int, batch: int, desc: str, progress: bool) -> Iterator[tuple[int, int]]:
    """(start, stop) of this process's batches of `total` items: batch k goes to rank k mod world."""
    rank, world = dist.world()
    starts = list(range(0, total, batch))[rank::world]
    for start in tqdm(starts, desc=desc, disable=not progress or rank > 0, unit="batch", dynamic_ncols=True):
        yield start, min(start + batch, total)


def feature_stats(net: Inception, read: Callable[[int, int], torch.Tensor | list[torch.Tensor]], total: int, batch: int,
                  desc: str, progress: bool) -> fid.FeatureStats:
    """Inception statistics of images read(start, stop) for start, stop covering [0, total), all processes'."""
    stats = fid.FeatureStats(net.dim)
    for start, stop in my_batches(total, batch, desc, progress):
        stats.add(net(read(start, stop)))
    return stats.sum_all()


def real_stats(net: Inception, images: ImageSet, batch: int, desc: str, progress: bool) -> fid.FeatureStats:
    """Statistics of a real image set, from the cache when its content was seen before."""
    path = fid.stats_path(images.content_key, net.path)
    stats = fid.load_stats(path)
    if stats is None:
        stats = feature_stats(net, images.read, images.count, batch, desc, progress)
        if dist.world()[0] == 0:
            fid.save_stats(path, stats)
    return stats


class Evaluator:
    """Networks and data shared by the metrics of one run; each metric is a method returning a value."""

    def __init__(self, run: Path, num: int, batch: int, device: str, inception: str | None = None,
                 lpips: str | None = None, crop: bool = False, seed: int = 0, progress: bool = True):
        self.run, self.num, self.batch, self.seed, self.crop = Run.open(run), num, batch, seed, crop
        self.rank, self.world = dist.world()
        self.device = dist.device_for_rank(resolve_device(device))
        self.cfg = self.run.config()
        latest = self.run.latest_checkpoint()
        self.model = load(latest, self.device)
        self.checkpoint = latest.name
        self.inception_path, self.lpips_path = inception, lpips
        self._inception = self._lpips = None
        self.progress = progress and self.rank == 0

    @property
    def inception(self) -> Inception:
        if self._inception is None:
            self._inception = Inception(self.inception_path, self.device)
        return self._inception

    @property
    def lpips(self) -> LPIPS:
        if self._lpips is None:
            from .lpips import LPIPS
            self._lpips = LPIPS("vgg16", self.lpips_path).to(self.device)
        return self._lpips

    # -- helpers -------------------------------------------------------------------
    def _my_batches(self, total: int, desc: str):
        return my_batches(total, self.batch, desc, self.progress)

    def _stats(self, read, total: int, desc: str) -> fid.FeatureStats:
        return feature_stats(self.inception, read, total, self.batch, desc, self.progress)

    def real_stats(self, images: ImageSet, desc: str) -> fid.FeatureStats:
        return real_stats(self.inception, images, self.batch, desc, self.progress)

    def _part(self, part: str) -> ImageSet:
        """The first `num` images of the run's data part, at the model's current resolution
        (a run stopped before its last level is compared at the size it generates)."""
        data, rows, _ = source.images(self.cfg, part)
        return array_set(f"{self.cfg.data.dataset}:{part}", data, rows[:self.num], self.model.resolution)

    # -- metrics -------------------------------------------------------------------
    # each returns (value, number of images or pairs it used)
    def fid(self) -> tuple[float, int]:
        real = self._part("train")
        fake = self._stats(lambda a, b: self.model.generate(b - a, seed=derived_seed(self.seed, a)), real.count,
                           "fid: generations")
        return fid.fid_from_stats(self.real_stats(real, "fid: training images"), fake), real.count

    def fid_rec(self) -> tuple[float, int]:
        held_out = self._part("test")
        recon = self._stats(lambda a, b: self.model.reconstruct(held_out.read(a, b)), held_out.count, "fid_rec: reconstructions")
        return fid.fid_from_stats(self.real_stats(held_out, "fid_rec: held-out images"), recon), held_out.count

    def fid_real(self) -> tuple[float, int]:
        train, held_out = self._part("train"), self._part("test")
        return fid.fid_from_stats(self.real_stats(train, "fid_real: training images"),
                                  self.real_stats(held_out, "fid_real: held-out images")), min(train.count, held_out.count)

    def lpips_rec(self) -> tuple[float, int]:
        held_out = self._part("test")
        total = torch.zeros(2, dtype=torch.float64)
        with torch.no_grad():
            for start, stop in self._my_batches(held_out.count, "lpips_rec"):
                x = self.model.as_images(held_out.read(start, stop)).to(self.device)
                d = self.lpips(x * 2 - 1, self.model.reconstruct(x).clamp(0, 1) * 2 - 1)
                total += torch.tensor([d.double().sum().item(), len(d)])
        total = dist.sum_all(total)
        return float(total[0] / total[1]), held_out.count

    def ppl(self, space: str, sampling: str) -> tuple[float, int]:
        m = self.model
        unclipped = functools.partial(m.decode, clip=False)  # as StyleGAN's PPL: G's images as they are
        lengths = []
        with torch.no_grad():
            for start, stop in self._my_batches(self.num, f"ppl_{space}{sampling}"):
                lengths.append(ppl.path_lengths(unclipped, m.map, self.lpips, m.cfg.latent_size, space, sampling,
                                                start, stop, self.seed, crop=self.crop))
        mine = torch.cat(lengths) if lengths else torch.zeros(0, dtype=torch.float64)
        return ppl.trimmed_mean(dist.gather_all(mine).numpy()), self.num

    def compute(self, name: str) -> tuple[float, int]:
        if name.startswith("ppl_"):
            return self.ppl(name[4], name[5:])
        return getattr(self, name)()


def run_metrics(run: Path, names: str, num: int, batch: int = 64, device: str = "auto", inception: str | None = None,
                lpips: str | None = None, crop: bool = False, seed: int = 0, progress: bool = True) -> list[dict]:
    """Compute the named metrics of a run; rank 0 appends one JSON line per metric to metrics.jsonl."""
    run = Run.open(run)
    if num < 2:
        raise UserError("--num must be at least 2")
    ev = Evaluator(run, num, batch, device, inception, lpips, crop, seed, progress)
    rows = []
    for name in parse(names, ev.model.is_style):
        t0 = time.perf_counter()
        value, used = ev.compute(name)
        row = {"metric": name, "value": value, "num": used, "checkpoint": ev.checkpoint, "seed": seed,
               "seconds": round(time.perf_counter() - t0, 1),
               "processes": ev.world, "device": str(ev.device), "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        if name.startswith("ppl_"):
            row["crop"] = crop
        rows.append(row)
        if ev.rank == 0:
            with open(run.metrics_path, "a") as f:
                f.write(json.dumps(row) + "\n")
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| metric | value | images | seconds |", "|---|---:|---:|---:|"]
    lines += [f"| {r['metric']} | {r['value']:.4f} | {r['num']} | {r['seconds']:.1f} |" for r in rows]
    return "\n".join(lines)


def fid_between(a: str, b: str, num: int | None = None, batch: int = 64, device: str = "auto",
                inception: str | None = None, progress: bool = True) -> tuple[float, tuple[int, int]]:
    """FID between two image sets named as `alae.data.sets.open_set` reads them; each set's
    statistics are cached by content, so naming a set again skips its features."""
    if num is not None and num < 2:
        raise UserError("--num must be at least 2")
    net = Inception(inception, dist.device_for_rank(resolve_device(device)))
    stats = [real_stats(net, open_set(spec, num), batch, f"fid: {spec}", progress) for spec in (a, b)]
    return fid.fid_from_stats(*stats), (stats[0].count, stats[1].count)
