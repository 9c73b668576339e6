"""A finished run gets its figures; F is inverted for the z traversals of Figure 4."""

import torch
from PIL import Image

from alae import figures, latent, report
from alae.data import source
from alae.training import train


def test_report_draws_reconstructions_traversals_and_losses(tiny_cfg, tmp_path):
    run = tmp_path / "run"
    train(tiny_cfg("mnist-mlp", "train.kimg=0.128", "report.figures=true"), run, progress=False)
    report.write(run, log=lambda m: None)
    for name in ("reconstructions.png", "traversals.png", "losses.png"):
        assert (run / name).is_file(), name
    rec = Image.open(run / "reconstructions.png")
    assert rec.size[1] == 2 * (56 + figures.PAD) + figures.PAD  # two rows of 28x28 digits drawn at 2x
    assert rec.size[0] == figures.LABEL_WIDTH + report.FIGURE_IMAGES * (56 + figures.PAD) + figures.PAD
    trav = Image.open(run / "traversals.png")
    assert trav.height == 2 * report.TRAVERSAL_PAIRS * (56 + figures.PAD) + figures.PAD
    assert not (run / "table2.md").exists()  # report.table2 is off in the tiny config


def test_invert_F_finds_z_whose_image_is_w(tiny_model):
    w = tiny_model.F(torch.randn(3, 8)).detach()
    z, residual = latent.invert_F(tiny_model, w, steps=400)
    assert residual < 1e-2
    assert torch.allclose(tiny_model.F(z), w, atol=0.1 * w.abs().max().item())


def test_invert_F_leaves_no_code_in_a_poor_minimum(tiny_model):
    """Every one of many codes is inverted, not only most: the worst residual is small too."""
    w = tiny_model.F(torch.randn(300, 8, generator=torch.Generator().manual_seed(1))).detach()
    z, residual = latent.invert_F(tiny_model, w)
    worst = ((tiny_model.F(z) - w).pow(2).mean(1) / w.pow(2).mean()).max().item()
    assert residual < 1e-3 and worst < 1e-2


def test_figure_images_are_one_per_class_and_pairs_differ():
    from alae.data import mnist
    _, labels = mnist.load("test")
    assert labels[source.pick(labels, len(labels), 10)].tolist() == list(range(10))
    a, b = source.pick(labels, len(labels), 4), source.pick(labels, len(labels), 4, offset=15)
    assert labels[b].tolist() == [5, 6, 7, 8] and not set(a) & set(b)


def test_figure_images_of_an_unlabelled_dataset_are_spread_over_it():
    assert source.pick(None, 100, 4) == [0, 25, 50, 75]
    assert source.pick(None, 3, 4, offset=1) == [1, 2, 0, 1]  # fewer images than asked: they repeat


def test_figure_images_are_padded_for_style_networks(tiny_cfg):
    images = source.figure_images(tiny_cfg("mnist-style"), 3)
    assert images.shape == (3, 1, 32, 32) and images.dtype == torch.float32
    assert images[:, :, :2].abs().sum() == 0 and 0 < images.max() <= 1


def test_the_loss_plot_draws_a_statistic_that_some_intervals_lack(tmp_path):
    """Under lazy R1 an interval of the log may hold no R1 iteration: its row has no "r1"."""
    rows = [{"kimg": 1.0, "loss_d": 1.0, "r1": 0.5, "img_per_s": 10.0}, {"kimg": 2.0, "loss_d": 0.9, "img_per_s": 10.0},
            {"kimg": 3.0, "loss_d": 0.8, "r1": 0.4, "img_per_s": 10.0}]
    figures.loss_plot(rows, tmp_path / "losses.png")
    assert (tmp_path / "losses.png").stat().st_size > 0
