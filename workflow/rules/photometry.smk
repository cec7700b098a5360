# Per-frame photometry: one job per cluster and filter, by the cluster's photometry.method:
# rule photometry (apertures) or rule psf_photometry (PSF fitting, which also writes the
# frame's PSF file).


rule photometry:
    input:
        image=frame_image,
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
        # measured peak (simulated 1k and 2k frames, float32): about 40x the file's size plus
        # ~110 MB of libraries (float64 images of the frame and a sparse system over the pixels
        # near stars); about 2.5 s per 1000 stars
        mem_mb=lambda wc, input, attempt: attempt * int(500 + 48 * input.size_mb),
        runtime=lambda wc, input, attempt: attempt * int(10 + input.size_mb / 4),
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
