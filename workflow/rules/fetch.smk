# Frames given by URL: fetched once into resources/frames/ and kept (not fetched again).


# On a cluster, downloads run where the workflow runs: compute nodes often have no internet.
localrules:
    fetch_frame,


rule fetch_frame:
    output:
        paths.FETCHED_FRAME,
    log:
        "logs/fetch_frame/{cluster}/{filter}.log",
    conda:
        "../envs/clusterphot.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: attempt * 200,
        runtime=lambda wc, attempt: attempt * 60,
    params:
        url=frame_url,
    script:
        "../scripts/fetch_frame.py"
