"""The CIS plot and the timeline grid: fixed-size float RGB images that show what they claim to."""
import copy

import numpy as np
import pytest

from pci_core import cis, plots

KS = list(range(13))
SIGMAS = np.linspace(14.6, 0.0, 13).tolist()


def summary(lock_low=3, lock_high=9, n=24, concept="a blue circle", seed=0):
    """Seeds that lock in at a step drawn from [lock_low, lock_high): a curve falling from 1 to 0."""
    lock = np.random.default_rng(seed).integers(lock_low, lock_high, size=n)
    d = (np.array(KS)[None, :] < lock[:, None]).astype(float)
    return cis.summarize(cis.CISResult(list(range(n)), KS, 12, SIGMAS, d, 0.5, concept), resamples=300)


def test_cis_plot_is_a_fixed_size_float_image():
    one = plots.cis_plot([summary()])
    many = plots.cis_plot([summary(), summary(6, 12, concept="a small square " * 10, seed=1)],
                          labels=["colour", "size"], title="two concepts")
    # each curve in its own colour (tab10: blue, then orange) on a mostly white figure; measured: one 2,364
    # blue pixels, no orange, 83.4% white; many 1,805 blue, 2,330 orange, 74.8% white
    blue, orange = np.array([0.1216, 0.4667, 0.7059]), np.array([1.0, 0.4980, 0.0549])
    for image, blue_px, orange_px, white in ((one, (1800, 3000), (0, 0), (0.80, 0.87)),
                                              (many, (1400, 2300), (1800, 2900), (0.71, 0.78))):
        assert image.shape == (550, 1000, 3) and image.dtype == np.float32
        assert 0.0 <= image.min() and image.max() <= 1.0
        counts = [int((np.abs(image - c).max(axis=-1) < 0.02).sum()) for c in (blue, orange)]
        share = float((image.min(axis=-1) > 0.98).mean())
        assert blue_px[0] <= counts[0] <= blue_px[1] and orange_px[0] <= counts[1] <= orange_px[1], counts
        assert white[0] < share < white[1], share
    assert not np.array_equal(one, many)
    with pytest.raises(ValueError, match="2 labels for 1 summaries"):
        plots.cis_plot([summary()], labels=["a", "b"])
    with pytest.raises(ValueError, match="empty"):
        plots.cis_plot([])


def test_a_crossing_is_marked_where_it_is_and_never_crosses_has_no_marker():
    crosses = summary()
    crosses["crossings"].pop("tau70")
    assert crosses["crossings"]["tau50"]["step"] is not None
    never = copy.deepcopy(crosses)
    never["crossings"]["tau50"].update(step=None, tau=None, step_ci=(None, None), tau_ci=(None, None), never=1.0)
    diff = np.abs(plots.cis_plot([crosses]) - plots.cis_plot([never])).max(axis=2) > 0.1
    # the same curve and band: the pictures differ in the tau50 marker with its interval (inside the
    # axes, a compact patch) and in the legend text (right of the axes), nowhere else
    ys, xs = np.nonzero(diff[:, :650])
    assert len(ys) > 50, "no tau50 marker drawn"
    assert xs.max() - xs.min() < 150 and ys.max() - ys.min() < 40
    assert diff[:, 680:].any()
    later = copy.deepcopy(crosses)  # the marker sits at its step: 3 steps later is ~3/12 of the axes further right
    c = later["crossings"]["tau50"]
    c.update(step=c["step"] + 3, step_ci=(c["step_ci"][0] + 3, c["step_ci"][1] + 3))
    moved = np.abs(plots.cis_plot([later]) - plots.cis_plot([never])).max(axis=2)[:, :650] > 0.1
    shift = np.nonzero(moved)[1].mean() - xs.mean()
    assert 100 < shift < 200, shift


def test_timeline_grid_places_each_image_in_its_cell_with_score_frames():
    rng = np.random.default_rng(0)
    seeds, ks = [11, 12, 13], [0, 3, 6, 9]
    images = rng.integers(0, 256, size=(3, 4, 64, 64, 3)).astype(np.float32) / 255  # exact in 8 bits
    scores = rng.uniform(size=(3, 4))
    grid = plots.timeline_grid(images, scores, ks, seeds, threshold=0.5, max_rows=2)
    assert grid.dtype == np.float32 and grid.ndim == 3 and grid.shape[2] == 3 and 0 <= grid.min() <= grid.max() <= 1
    pixels = (grid * 255).round().astype(np.uint8)
    corners = {}
    for i in range(3):
        for j in range(4):
            cell = np.repeat(np.repeat((images[i, j] * 255).round().astype(np.uint8), 2, 0), 2, 1)  # 64 px shown at 128
            corners[i, j] = find(pixels, cell[:100])  # the top of the cell: no text is drawn there
    assert all(corners[2, j] is None for j in range(4)), "max_rows=2 must leave the third seed out"
    for i in range(2):
        for j in range(4):
            y, x = corners[i, j]
            assert (y, x) == (corners[i, 0][0], corners[0, j][1])  # a grid: rows share y, columns share x
            frame = tuple(pixels[y - 1, x - 1])
            assert frame == (plots.YES if scores[i, j] >= 0.5 else plots.NO)
    assert corners[0, 1][1] > corners[0, 0][1] + 128 and corners[1, 0][0] > corners[0, 0][0] + 128


def find(pixels, patch):
    """(y, x) where patch occurs exactly in pixels, or None."""
    ys, xs = np.nonzero(np.all(pixels == patch[0, 0], axis=2))
    h, w = patch.shape[:2]
    for y, x in zip(ys, xs):
        if np.array_equal(pixels[y:y + h, x:x + w], patch):
            return int(y), int(x)
    return None


def test_timeline_grid_shrinks_large_images_and_rejects_mismatched_input():
    images = np.random.default_rng(1).uniform(size=(2, 3, 512, 384, 3))
    grid = plots.timeline_grid(images, np.zeros((2, 3)), [0, 5, 10], [1, 2], 0.5)
    assert grid.shape[0] < 2 * 300 and grid.shape[1] < 3 * 230 + 200  # cells 256 x 192, not 512 x 384
    with pytest.raises(ValueError, match="images"):
        plots.timeline_grid(images[0], np.zeros((2, 3)), [0, 5, 10], [1, 2], 0.5)
    with pytest.raises(ValueError, match="must match"):
        plots.timeline_grid(images, np.zeros((2, 3)), [0, 5], [1, 2], 0.5)


def test_a_timeline_keeps_only_the_cells_it_shows():
    """10,001 insertion steps and a stream of pictures: the grid keeps its seeds x 21 cells (issue 27), a
    clip's cell is its first, middle and last frames side by side, and its whole clip goes to save_clip."""
    saved = []
    grid = plots.Timeline([0, 1], list(range(10001)), save_clip=lambda seed, k, clip: saved.append((seed, k)))
    assert len(grid.ks) == plots.TIMELINE_COLUMNS and grid.ks[0] == 0 and grid.ks[-1] == 10000
    for seed in (0, 1, 2):
        for k in range(0, 10001, 7):
            grid.keep(seed, k, np.zeros((8, 8, 3)))
    assert len(grid.cells) <= 2 * plots.TIMELINE_COLUMNS and not saved
    clip = np.stack([np.full((4, 4, 3), f / 4) for f in range(5)])
    grid.keep(0, 0, clip)
    assert grid.cells[(0, 0)].shape == (4, 12, 3) and saved == [(0, 0)]
    assert np.allclose(grid.cells[(0, 0)][0, [0, 4, 8], 0], [0, 0.5, 1.0])  # frames 0, 2, 4
