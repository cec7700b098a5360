# Per-frame photometry: one job per cluster and filter, by the cluster's photometry.method:
# rule photometry (apertures) or rule psf_photometry (PSF fitting, which also writes the
# frame's PSF file).


# The frame's cosmic rays (cosmic_rays: auto | lacosmic | none), found once and masked by
# every job that measures the frame: its photometry, its artificial stars, its composite.
rule cosmic_rays:
    input:
        image=frame_image,
    output:
        paths.COSMIC_RAY_MASK,
    log:
        "logs/cosmic_rays/{cluster}/{filter}.log",
    benchmark:
        "benchmarks/cosmic_rays/{cluster}/{filter}.tsv"
    conda:
        "../envs/clusterphot.yaml"
    threads: 1
    resources:
        # L.A.Cosmic works on blocks of 2048 rows: a dozen float32 arrays of a block beside
        # the frame and its masks (631 MB peak at 4k x 4k: make bench-cosmic-rays)
        mem_mb=lambda wc, input, attempt: attempt * int(800 + 6 * input.size_mb),
        # 5 CPU s per 10^6 pixels with the full medians (4k x 4k: 84 s), 1.3 s per MB of
        # float32 file; a frame that needs none is read and done
        runtime=lambda wc, input, attempt: attempt * int(5 + input.size_mb / 30),
    params:
        # what reading the frame and finding its cosmic rays need, and no more: a new zero
        # point does not find them again, a new L.A.Cosmic setting in the code does
        settings=cosmic_ray_settings,
        lacosmic=LACOSMIC,
        fingerprint=frame_fingerprint,
    script:
        "../scripts/cosmic_rays.py"


rule photometry:
    input:
        image=frame_image,
        cosmic_rays=paths.COSMIC_RAY_MASK,
    output:
        catalog=paths.CATALOG,
    log:
        "logs/photometry/{cluster}/{filter}.log",
    benchmark:
        "benchmarks/photometry/{cluster}/{filter}.tsv"
    wildcard_constraints:
        cluster=clusters_measured_with("aperture"),
    conda:
        "../envs/clusterphot.yaml"
    threads: 1
    resources:
        # measured peak: about 2x the frame's float32 size plus ~110 MB of libraries
        # (bench/photometry_vs_tutorial.py); 4x the file leaves room for 16-bit files
        mem_mb=lambda wc, input, attempt: attempt * int(500 + 4 * input.size_mb),
        runtime=lambda wc, input, attempt: attempt * int(5 + input.size_mb / 20),
    params:
        settings=frame_settings,
        url=frame_url,
        # the frame's content: a replaced frame reruns even when its date is older
        fingerprint=frame_fingerprint,
        photometry=lambda wc: PHOTOMETRY[wc.cluster],
        system=config["magnitude_system"],
        zeropoint_cache=config["zeropoints"]["cache"],
        zeropoint_service=config["zeropoints"]["service_url"],
    script:
        "../scripts/photometry.py"


rule psf_photometry:
    input:
        image=frame_image,
        cosmic_rays=paths.COSMIC_RAY_MASK,
    output:
        catalog=paths.CATALOG,
        psf=paths.PSF_MODEL,
    log:
        "logs/psf_photometry/{cluster}/{filter}.log",
    benchmark:
        "benchmarks/psf_photometry/{cluster}/{filter}.tsv"
    wildcard_constraints:
        cluster=clusters_measured_with("psf"),
    conda:
        "../envs/clusterphot.yaml"
    threads: 1
    resources:
        # measured peak (simulated crowded frames, float32, clusterphot measure --method psf):
        # 308, 354 and 539 MB for 1k, 2k and 4k frames, 0.8-1.1 GB at 10k x 10k with 68,000-
        # 135,000 stars (a frame larger than photometry.psf.tile is fitted tile by tile, so
        # beyond the frame's own arrays memory follows a tile); 2.7, 5.7, 14 and 36-76 s, at
        # 10k 61-131 s fitted again with the tiles' PSFs interpolated (the other core busy).
        # Declared: about 2x the peak, 6-15x the time (a slower node, a denser cluster).
        mem_mb=lambda wc, input, attempt: attempt * int(800 + 4 * input.size_mb),
        runtime=lambda wc, input, attempt: attempt * int(5 + input.size_mb / 40),
    params:
        settings=frame_settings,
        url=frame_url,
        fingerprint=frame_fingerprint,
        photometry=lambda wc: PHOTOMETRY[wc.cluster],
        psf=psf_parameters,
        system=config["magnitude_system"],
        zeropoint_cache=config["zeropoints"]["cache"],
        zeropoint_service=config["zeropoints"]["service_url"],
    script:
        "../scripts/photometry.py"


# The residual image (photometry.psf.write_residual): the frame less the fit's model, which
# the catalogue and the PSF file give back.
rule psf_residual:
    input:
        image=frame_image,
        catalog=paths.CATALOG,
        psf=paths.PSF_MODEL,
        cosmic_rays=paths.COSMIC_RAY_MASK,
    output:
        paths.PSF_RESIDUAL,
    log:
        "logs/psf_residual/{cluster}/{filter}.log",
    benchmark:
        "benchmarks/psf_residual/{cluster}/{filter}.tsv"
    conda:
        "../envs/clusterphot.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, input, attempt: attempt * int(500 + 6 * input.size_mb),
        runtime=lambda wc, input, attempt: attempt * int(5 + input.size_mb / 20),
    params:
        settings=frame_settings,
    script:
        "../scripts/psf_residual.py"
