"""Command line: measure one frame, or simulate a demo cluster, without the workflow.

    clusterphot measure frame.fits --filter F606W -o F606W.ecsv --psf-output F606W_psf.fits
    clusterphot measure frame.fits --filter F606W -o F606W.ecsv --method aperture
    clusterphot simulate results/demo/demo1 --name demo1 --seed 1
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .catalog import PHOTOMETRY_METHODS, catalog_for_frame
from .config import LENGTH_IN_FWHM, FrameSettings
from .cosmicrays import COSMIC_RAY_MODES
from .logs import clean_failure, log_to
from .outputs import write_table
from .photometry import PhotometryParameters
from .psfphot import PSFParameters
from .zeropoints import SYSTEMS


def _add_measure(subparsers) -> None:
    p = subparsers.add_parser("measure", help="detect and measure the stars of one FITS frame")
    p.add_argument("image", type=Path, help="FITS frame")
    p.add_argument("-f", "--filter", required=True, dest="filter_name", help="filter name, e.g. F606W")
    p.add_argument("-o", "--output", required=True, type=Path, help="catalogue to write (.ecsv)")
    p.add_argument("--system", choices=SYSTEMS, default="AB", help="magnitude system (default AB)")
    p.add_argument("--zeropoint-cache", type=Path, default=Path("resources/zeropoints"))
    p.add_argument("--zeropoint-service", default=None, help="URL of an ACS zero-point API server")
    p.add_argument("--method", choices=PHOTOMETRY_METHODS, default="psf",
                   help="aperture photometry, or PSF fitting as the workflow's photometry.method: psf "
                        "(default psf)")
    frame = p.add_argument_group("frame overrides (default: from the header)")
    frame.add_argument("--exptime", type=float, help="exposure time, s")
    frame.add_argument("--zeropoint", type=float, help="zero point, mag for the frame's units per second")
    frame.add_argument("--zeropoint-system", choices=SYSTEMS,
                       help="the --zeropoint's magnitude system, when not --system's (e.g. VEGA)")
    frame.add_argument("--pivot-wavelength", type=float, help="Angstrom")
    frame.add_argument("--gain", type=float, help="electrons per image unit")
    frame.add_argument("--saturation", type=float, help="saturation level, image units")
    frame.add_argument("--hdu", help="HDU index, EXTNAME, or EXTNAME,EXTVER of the image "
                                     "(SCI,2: an flc's second chip)")
    frame.add_argument("--plane", type=int, help="plane of a 3-D cube")
    frame.add_argument("--dq-bits", type=int, help="an HST product's DQ bits to mask (default 15519; 0: none)")
    frame.add_argument("--cosmic-rays", choices=COSMIC_RAY_MODES, default="auto",
                       help="find cosmic rays with L.A.Cosmic and mask them: auto (single exposures only, "
                            "by the header), lacosmic (always) or none (default auto)")
    phot = p.add_argument_group("photometry parameters (lengths in pixels, or in FWHM: '1.5fwhm')")
    phot.add_argument("--fwhm", type=fwhm_value, default="auto",
                      help="PSF FWHM in pixels, or auto (the default): measured from the frame's bright stars")
    phot.add_argument("--threshold", type=float, default=PhotometryParameters.threshold,
                      help="detection threshold in sky sigma")
    phot.add_argument("--aperture-radius", type=length_value, default=PhotometryParameters.aperture_radius)
    phot.add_argument("--annulus-radii", type=length_value, nargs=2, default=PhotometryParameters.annulus_radii)
    psf = p.add_argument_group("PSF photometry (--method psf; other photometry.psf settings at their defaults)")
    psf.add_argument("--psf-output", type=Path,
                     help="write the frame's PSF file (FITS) here, as results/psf/{cluster}/{filter}.fits")
    psf.add_argument("--min-psf-stars", type=int, default=PSFParameters.min_psf_stars,
                     help="fewer suitable stars: the frame's PSF cannot be learned (see --fallback)")
    psf.add_argument("--residual-passes", type=int, default=PSFParameters.residual_passes,
                     help="searches for stars on the residual image")
    psf.add_argument("--fallback", choices=("error", "aperture"), default="error",
                     help="too few PSF stars: stop (error, the default), or measure with apertures")
    p.add_argument("--log", type=Path, help="write the log here instead of the terminal")


def _add_simulate(subparsers) -> None:
    p = subparsers.add_parser("simulate", help="write HST-like frames of a simulated cluster")
    p.add_argument("outdir", type=Path)
    p.add_argument("--name", default="demo1")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--shape", type=int, nargs=2, default=(1024, 1024), metavar=("NY", "NX"))
    p.add_argument("--n-stars", type=int, default=6000)


def fwhm_value(value: str) -> float | str:
    """--fwhm: 'auto' or pixels."""
    return "auto" if value.strip().lower() == "auto" else float(value)


def length_value(value: str) -> float | str:
    """A length: pixels, or '1.5fwhm' as the config's '1.5 fwhm'; more than 0."""
    match = LENGTH_IN_FWHM.match(value)
    if match is None and float(value) > 0:
        return float(value)
    if match is not None and float(match.group(1)) > 0:
        return value
    raise argparse.ArgumentTypeError(f"{value!r} is no length: give pixels or a multiple of the FWHM, more than 0")


def parse_hdu(value: str | None) -> int | str | tuple[str, int] | None:
    """--hdu as read_frame takes it: 3, SCI, or SCI,2 (EXTNAME and EXTVER)."""
    if value is None:
        return None
    name, comma, version = value.partition(",")
    if comma and version.strip().isdigit():
        return name.strip(), int(version)
    return int(value) if value.lstrip("-").isdigit() else value


def measure(args: argparse.Namespace) -> None:
    settings = FrameSettings(
        args.filter_name, exptime=args.exptime, zeropoint=args.zeropoint, zeropoint_system=args.zeropoint_system,
        pivot_wavelength=args.pivot_wavelength, gain=args.gain, saturation=args.saturation,
        hdu=parse_hdu(args.hdu), plane=args.plane, dq_bits=args.dq_bits, cosmic_rays=args.cosmic_rays,
    )
    params = PhotometryParameters(fwhm=args.fwhm, threshold=args.threshold,
                                  aperture_radius=args.aperture_radius,
                                  annulus_radii=tuple(args.annulus_radii))
    psf_params = None
    if args.method == "psf":
        psf_params = PSFParameters(min_psf_stars=args.min_psf_stars, residual_passes=args.residual_passes)
    table = catalog_for_frame(args.image, settings, params, system=args.system,
                              zeropoint_cache=args.zeropoint_cache,
                              zeropoint_service=args.zeropoint_service,
                              method=args.method, psf_params=psf_params, fallback=args.fallback,
                              psf_output=args.psf_output)
    write_table(table, args.output)
    print(summary(args.output, table))


def summary(output: Path, table) -> str:
    """One line: stars, zero point, correction to total; for PSF photometry the PSF's FWHM and stars."""
    zp = table.meta["zeropoint"]
    line = f"{output}: {len(table)} stars, zero point {zp['value']:.3f} ({zp['system']}, {zp['source']}), "
    correction = table.meta["aperture_correction"]["mag"]
    if table.meta.get("photometry_method") == "psf":
        psf = table.meta["psf"]
        return line + (f"PSF photometry, correction to total {correction:+.3f} mag, "
                       f"PSF FWHM {psf['fwhm']:.2f} px from {psf['n_stars']} stars")
    line += f"aperture correction {correction:+.3f} mag; FWHM {table.meta['fwhm']['used']:.2f} px"
    if "psf_fallback" in table.meta:
        line += f"; no PSF ({table.meta['psf_fallback']['reason']}), measured with apertures"
    return line


def simulate(args: argparse.Namespace) -> None:
    from .simulate import write_simulated_cluster

    paths = write_simulated_cluster(args.outdir, name=args.name, seed=args.seed,
                                    shape=tuple(args.shape), n_stars=args.n_stars)
    print("\n".join(str(p) for p in paths))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="clusterphot", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_measure(subparsers)
    _add_simulate(subparsers)
    args = parser.parse_args(argv)
    if args.command == "measure" and args.psf_output is not None and args.method != "psf":
        parser.error("--psf-output needs --method psf")
    log_to(getattr(args, "log", None))
    with clean_failure():
        {"measure": measure, "simulate": simulate}[args.command](args)


if __name__ == "__main__":
    main()
