# Figures: per frame its luminosity function and where its stars were measured (and, measured
# with PSF fitting, its PSF); per colour of a cluster its colour-magnitude diagram.


# Seconds-long plots run where the workflow runs, not as cluster jobs of their own.
localrules:
    luminosity_function,
    detection_map,
    psf_figure,
    cmd,


rule luminosity_function:
    input:
        unpack(completeness_curve_of),
        catalog=paths.CATALOG,
    output:
        report(
            paths.LUMINOSITY_FUNCTION,
            caption="../report/luminosity_function.rst",
            category="Luminosity functions",
            subcategory="{cluster}",
            labels={
                "cluster": "{cluster}",
                "filter": "{filter}",
                "figure": "luminosity function",
            },
        ),
    log:
        "logs/luminosity_function/{cluster}/{filter}.log",
    conda:
        "../envs/clusterphot.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, input, attempt: attempt * int(500 + 5 * input.size_mb),
        runtime=lambda wc, input, attempt: attempt * int(2 + input.size_mb / 50),
    script:
        "../scripts/luminosity_function.py"


rule detection_map:
    input:
        # the frame and its catalogue, and the PSF file of a frame measured with PSF fitting
        unpack(measured_frame_inputs),
    output:
        report(
            paths.DETECTION_MAP,
            caption="../report/detections.rst",
            category="Detections",
            subcategory="{cluster}",
            labels={
                "cluster": "{cluster}",
                "filter": "{filter}",
                "figure": "detections",
            },
        ),
    log:
        "logs/detection_map/{cluster}/{filter}.log",
    conda:
        "../envs/clusterphot.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, input, attempt: attempt * int(500 + 4 * input.size_mb),
        runtime=lambda wc, input, attempt: attempt * int(5 + input.size_mb / 50),
    params:
        settings=frame_settings,
        crop=config["plots"]["detection_crop"],
    script:
        "../scripts/detection_map.py"


rule psf_figure:
    input:
        image=frame_image,
        catalog=paths.CATALOG,
        psf=paths.PSF_MODEL,
        cosmic_rays=paths.COSMIC_RAY_MASK,
    output:
        report(
            paths.PSF_FIGURE,
            caption="../report/psf.rst",
            category="PSFs",
            subcategory="{cluster}",
            labels={
                "cluster": "{cluster}",
                "filter": "{filter}",
                "figure": "PSF",
            },
        ),
    log:
        "logs/psf_figure/{cluster}/{filter}.log",
    conda:
        "../envs/clusterphot.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, input, attempt: attempt * int(500 + 4 * input.size_mb),
        runtime=lambda wc, input, attempt: attempt * int(5 + input.size_mb / 50),
    params:
        settings=frame_settings,
    script:
        "../scripts/psf_figure.py"


rule cmd:
    input:
        unpack(cmd_completeness_curve),
        matched=paths.MATCHED,
    output:
        report(
            paths.CMD,
            caption="../report/cmd.rst",
            category="Colour-magnitude diagrams",
            subcategory="{cluster}",
            labels={"cluster": "{cluster}", "colour": "{blue}-{red}", "figure": "CMD"},
        ),
    log:
        "logs/cmd/{cluster}/{blue}-{red}.log",
    conda:
        "../envs/clusterphot.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, input, attempt: attempt * int(500 + 5 * input.size_mb),
        runtime=lambda wc, input, attempt: attempt * int(2 + input.size_mb / 50),
    params:
        band=lambda wc: cmd_band(config, wc.blue, wc.red),
        quality=config["catalogs"]["quality"],
    script:
        "../scripts/cmd.py"
