# Artificial-star tests (artificial_stars.n_stars > 0): per frame, its artificial stars shared
# among artificial_stars.jobs jobs (rule artificial_stars, a scatter: on Slurm they run in
# parallel), each measuring its share in passes as the catalogue was measured; gathered into
# the frame's table of artificial stars and completeness curve (rule completeness) and plotted.


scattergather:
    artificial_stars=config["artificial_stars"]["jobs"],


localrules:
    completeness,
    completeness_plot,


rule artificial_stars:
    input:
        unpack(measured_frame_inputs),
    output:
        paths.ARTIFICIAL_JOB,
    log:
        "logs/artificial_stars/{cluster}/{filter}_{scatteritem}.log",
    benchmark:
        "benchmarks/artificial_stars/{cluster}/{filter}_{scatteritem}.tsv"
    conda:
        "../envs/clusterphot.yaml"
    threads: 1
    resources:
        # a pass holds the frame, a copy with the artificial stars and (PSF path) the model
        # of the catalogue's other stars, besides what measuring the frame needs: measured
        # 2.6-3.8 GB for 10,000 stars on a 10k x 10k frame (about 9x its 400 MB), declared
        # about 1.5x that
        mem_mb=lambda wc, input, attempt: attempt
        * int(800 + (12 if METHOD[wc.cluster] == "psf" else 8) * input.size_mb),
        runtime=artificial_job_runtime,
    params:
        settings=frame_settings,
        photometry=lambda wc: PHOTOMETRY[wc.cluster],
        psf=artificial_psf_parameters,
        artificial=artificial_job_settings,
    script:
        "../scripts/artificial_stars.py"


rule completeness:
    input:
        jobs=gather.artificial_stars(frame_pattern(paths.ARTIFICIAL_JOB)),
        catalog=paths.CATALOG,
    output:
        stars=paths.COMPLETENESS_STARS,
        curve=paths.COMPLETENESS_CURVE,
    log:
        "logs/completeness/{cluster}/{filter}.log",
    conda:
        "../envs/clusterphot.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, input, attempt: attempt * int(500 + 10 * input.size_mb),
        runtime=lambda wc, input, attempt: attempt * int(2 + input.size_mb / 50),
    params:
        artificial=lambda wc: ARTIFICIAL[wc.cluster],
    script:
        "../scripts/completeness.py"


rule completeness_plot:
    input:
        stars=paths.COMPLETENESS_STARS,
        curve=paths.COMPLETENESS_CURVE,
    output:
        report(
            paths.COMPLETENESS_PLOT,
            caption="../report/completeness.rst",
            category="Completeness",
            subcategory="{cluster}",
            labels={
                "cluster": "{cluster}",
                "filter": "{filter}",
                "figure": "completeness",
            },
        ),
    log:
        "logs/completeness_plot/{cluster}/{filter}.log",
    conda:
        "../envs/clusterphot.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, input, attempt: attempt * int(500 + 5 * input.size_mb),
        runtime=lambda wc, input, attempt: attempt * int(2 + input.size_mb / 50),
    script:
        "../scripts/completeness_plot.py"
