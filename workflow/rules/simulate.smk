# The built-in demo: HST-like frames of simulated old clusters (only when no clusters are configured).


rule simulate:
    output:
        frames=expand(
            paths.DEMO_FRAME,
            cluster="{cluster}",
            filter=config["demo"]["filters"],
        ),
        truths=expand(
            paths.DEMO_TRUTH,
            cluster="{cluster}",
            filter=config["demo"]["filters"],
        ),
    log:
        "logs/simulate/{cluster}.log",
    benchmark:
        "benchmarks/simulate/{cluster}.tsv"
    conda:
        "../envs/clusterphot.yaml"
    threads: 1
    resources:
        # a few float32/float64 working copies of each frame
        mem_mb=lambda wc, attempt: attempt
        * (500 + config["demo"]["shape"][0] * config["demo"]["shape"][1] * 40 // 2**20),
        runtime=lambda wc, attempt: attempt * 10,
    params:
        cluster=lambda wc: config["demo"]["clusters"][wc.cluster],
        filters=config["demo"]["filters"],
        shape=config["demo"]["shape"],
    script:
        "../scripts/simulate.py"
