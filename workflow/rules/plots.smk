# Figures of one frame: its luminosity function and where its stars were measured.


# Seconds-long plots run where the workflow runs, not as cluster jobs of their own.
localrules:
    luminosity_function,
    detection_map,


rule luminosity_function:
    input:
        catalog="results/catalogs/{cluster}/{filter}.ecsv",
    output:
        report(
            "results/plots/{cluster}/lf_{filter}.png",
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
        image=frame_image,
        catalog="results/catalogs/{cluster}/{filter}.ecsv",
    output:
        report(
            "results/plots/{cluster}/detections_{filter}.png",
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
