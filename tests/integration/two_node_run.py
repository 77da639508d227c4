"""Helper for test_multinode.py (not a test): run the pipeline on a real two-node Ray cluster.

Started as a subprocess with ``RAY_TMPDIR`` pointing at a private directory, so the cluster's
address file never hijacks another process's ``ray.init()``. ``ray.cluster_utils.Cluster``
starts a head and a worker node (separate raylets and object stores, one CPU each) and stops
exactly the processes it started.

    python tests/integration/two_node_run.py {guard|run|one} OUTPUT LINEAGE TEMP_DIR [--set k=v]...
"""

from __future__ import annotations

import json
import sys


def main() -> int:
    mode, output, lineage, temp_dir = sys.argv[1:5]
    sets = [a for a in sys.argv[5:] if a != "--set"]
    import ray

    from pipeline.config import load_config
    from pipeline.dedup_phase import MultiNodeStorageError, check_shared_output
    from pipeline.run import run_pipeline

    cluster = None
    if mode == "one":
        ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp_dir)
    else:
        from ray.cluster_utils import Cluster

        node = {"num_cpus": 1, "object_store_memory": 300 * 2**20, "temp_dir": temp_dir}
        cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
        cluster.add_node(**node)
        ray.init(address=cluster.address)
    try:
        nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
        print(json.dumps({"nodes": nodes}), flush=True)
        cfg = load_config(
            None,
            [
                f"output.dir={output}",
                f"output.lineage_path={lineage}",
                "execution.progress=false",
                *sets,
            ],
        )
        if mode == "guard":
            assert check_shared_output(output, declared_shared=True) == 2
            try:
                run_pipeline(cfg)
            except MultiNodeStorageError as exc:
                print(json.dumps({"refused": str(exc)}), flush=True)
                return 3
            return 0
        res = run_pipeline(cfg)
        print(
            json.dumps({"status": res.status, "docs_kept": res.docs_kept, "counts": res.counts}),
            flush=True,
        )
        return 0
    finally:
        ray.shutdown()
        if cluster is not None:
            cluster.shutdown()


if __name__ == "__main__":
    sys.exit(main())
