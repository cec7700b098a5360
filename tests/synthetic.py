"""Small synthetic frames with known stars for the package tests (Gaussian PSF, exact pixel integrals)."""

from __future__ import annotations

import numpy as np
from astropy.io import fits
from scipy.special import erf


def gaussian_stars(shape, x, y, flux, sigma, sky=0.0, read_noise=0.0, rng=None, stamp=12):
    """Image (electrons, float32) of Gaussian stars integrated over pixels, plus sky and noise."""
    image = np.full(shape, sky, dtype=np.float64)
    offsets = np.arange(-stamp, stamp + 1)
    for xs, ys, fs in zip(x, y, flux):
        xc, yc = int(round(xs)), int(round(ys))
        edges_x = xc + offsets - 0.5
        edges_y = yc + offsets - 0.5
        fx = 0.5 * (erf((edges_x + 1 - xs) / (np.sqrt(2) * sigma)) - erf((edges_x - xs) / (np.sqrt(2) * sigma)))
        fy = 0.5 * (erf((edges_y + 1 - ys) / (np.sqrt(2) * sigma)) - erf((edges_y - ys) / (np.sqrt(2) * sigma)))
        ys_, xs_ = yc + offsets, xc + offsets
        keep_y = (ys_ >= 0) & (ys_ < shape[0])
        keep_x = (xs_ >= 0) & (xs_ < shape[1])
        image[np.ix_(ys_[keep_y], xs_[keep_x])] += fs * np.outer(fy[keep_y], fx[keep_x])
    if rng is not None:
        image = rng.poisson(np.clip(image, 0, None)).astype(np.float64)
        image += rng.normal(0.0, read_noise, shape)
    return image.astype(np.float32)


def grid_of_stars(shape, spacing, margin, rng):
    """Star positions on a jittered grid, well separated (isolated stars)."""
    ys, xs = np.mgrid[margin : shape[0] - margin : spacing, margin : shape[1] - margin : spacing]
    x = xs.ravel() + rng.uniform(-0.5, 0.5, xs.size)
    y = ys.ravel() + rng.uniform(-0.5, 0.5, ys.size)
    return x, y


def write_frame(path, data, exptime=100.0, bunit="ELECTRONS", photflam=7.8774e-20, photplam=5921.9,
                extra_primary=None, extra_sci=None):
    """An HST-like FITS file: empty primary (observation keywords) + SCI extension."""
    primary = fits.PrimaryHDU()
    primary.header.update({"TELESCOP": "HST", "INSTRUME": "ACS", "DETECTOR": "WFC", "FILTER1": "F606W",
                           "DATE-OBS": "2016-04-01"})
    if exptime is not None:
        primary.header["EXPTIME"] = exptime
    primary.header.update(extra_primary or {})
    sci = fits.ImageHDU(data, name="SCI")
    if bunit is not None:
        sci.header["BUNIT"] = bunit
    if photflam is not None:
        sci.header["PHOTFLAM"] = photflam
    if photplam is not None:
        sci.header["PHOTPLAM"] = photplam
    sci.header.update(extra_sci or {})
    fits.HDUList([primary, sci]).writeto(path, overwrite=True)
    return path


def field_frames(folder, filters, to_reference, own_sources, shape, n_stars=25, seed=3, clear=(), common=True):
    """FITS frames of one field in several filters: common grey stars plus each filter's own sources.

    Positions are drawn on the reference grid (avoiding ``clear`` positions by 12 px); each
    filter's frame is drawn through the inverse of its ``to_reference`` transform (frame px ->
    reference px). ``own_sources`` maps a filter to (x, y) reference positions of sources seen
    only in it. Returns {filter: path} and the common stars' reference x, y.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    xs = rng.uniform(10, shape[1] - 10, n_stars)
    ys = rng.uniform(10, shape[0] - 10, n_stars)
    keep = np.ones(n_stars, dtype=bool)
    for cx, cy in clear:
        keep &= np.hypot(xs - cx, ys - cy) > 12
    xs, ys = (xs[keep], ys[keep]) if common else (np.empty(0), np.empty(0))
    flux = rng.uniform(2000, 8000, xs.size)
    paths = {}
    for name in filters:
        own = np.array(own_sources.get(name, []), dtype=float).reshape(-1, 2)
        fx, fy = to_reference[name].inverse().apply(np.r_[xs, own[:, 0]], np.r_[ys, own[:, 1]])
        data = gaussian_stars(shape, fx, fy, np.r_[flux, np.full(len(own), 20000.0)], sigma=1.3, sky=20.0,
                              read_noise=3.0, rng=rng)
        paths[name] = write_frame(folder / f"{name}.fits", data, bunit="ELECTRONS")
    return paths, xs, ys


def moffat_epsf(fwhm: float, oversampling: int = 4):
    """The exact effective PSF of the simulator's Moffat stars, as an EPSF."""
    from clusterphot.psf import EPSF
    from clusterphot.simulate import moffat_epsf_grid

    return EPSF(moffat_epsf_grid(fwhm, oversampling), oversampling)


def moffat_field(shape, x, y, flux, fwhm: float, sky: float = 50.0, read_noise: float = 4.0, rng=None):
    """Electrons (float32) of Moffat stars (the simulator's PSF) on a sky, with Poisson and read noise."""
    from clusterphot.simulate import add_stars, moffat_phase_stamps

    pad = 16
    canvas = np.zeros((shape[0] + 2 * pad, shape[1] + 2 * pad), np.float32)
    add_stars(canvas, np.asarray(x, float) + pad, np.asarray(y, float) + pad, np.asarray(flux, float),
              moffat_phase_stamps(fwhm))
    image = canvas[pad:-pad, pad:-pad].astype(np.float64) + sky
    if rng is not None:
        image = rng.poisson(image).astype(np.float64) + rng.normal(0.0, read_noise, shape)
    return image.astype(np.float32)
