#!/usr/bin/python3
"""The alpha-beta model of the allreduce with two levels, inside a node (shared memory) and across nodes
(the network), fitted on a cluster and set beside what was measured there.

usage: two_level_model.py ONE_NODE TWO_NODES MEASURED RANKS_PER_NODE NODES
  ONE_NODE   bench/allreduce output, 2 ranks on one node (column ring): fits alpha_s, B_s
  TWO_NODES  bench/allreduce output, 1 rank on each of 2 nodes (column ring): fits alpha_n, B_n
  MEASURED   bench/allreduce output on NODES x RANKS_PER_NODE with columns ring and hierarchical

On 2 ranks a ring allreduce of b bytes takes b/B + 2 alpha. On N nodes of L ranks (n = N L):
  flat ring     2(n-1)/n b/B_n + 2(n-1) alpha_n     every step waits for the hop across nodes
  hierarchical  2(L-1)/L b/B_s + 2(L-1) alpha_s     the reduce-scatter and allgather inside the node
              + 2(N-1)/N b/B_n + 2(N-1) alpha_n     L rings across nodes, each over b/L, sharing the link
"""
import sys


def columns(path):
    """{column name: {bytes: microseconds}} of a bench/allreduce output."""
    table, names = {}, None
    for line in open(path):
        fields = line.split()
        if fields[:1] == ["bytes"]:
            names = [f[:-3] for f in fields if f.endswith("_us")]
        elif fields and fields[0].isdigit() and names:
            times = [float(f) for f in fields[3::3][:len(names)]]
            for name, t in zip(names, times):
                table.setdefault(name, {})[int(fields[0])] = t
    return table


def fit(points):
    """alpha (s), B (bytes/s) from t = b/B + 2 alpha, least squares over (bytes, us) points."""
    xs, ys = list(points), [points[b] * 1e-6 for b in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return max((my - slope * mx) / 2, 1e-7), 1 / slope


def main():
    one_node, two_nodes, measured_path = sys.argv[1:4]
    per_node, nodes = int(sys.argv[4]), int(sys.argv[5])
    n = per_node * nodes
    alpha_s, b_s = fit(columns(one_node)["ring"])
    alpha_n, b_n = fit(columns(two_nodes)["ring"])
    print(f"# fitted: inside a node alpha {alpha_s * 1e6:.1f} us, B {b_s / 1e9:.2f} GB/s; "
          f"across nodes alpha {alpha_n * 1e6:.1f} us, B {b_n / 1e9:.3f} GB/s")
    flat = lambda b: 2 * (n - 1) / n * b / b_n + 2 * (n - 1) * alpha_n
    hier = lambda b: (2 * (per_node - 1) / per_node * b / b_s + 2 * (per_node - 1) * alpha_s
                      + 2 * (nodes - 1) / nodes * b / b_n + 2 * (nodes - 1) * alpha_n)
    measured = columns(measured_path)
    print(f"# {nodes} nodes x {per_node} ranks: milliseconds per allreduce, measured and predicted")
    print(f"{'bytes':>12} {'flat':>9} {'model':>9} {'hier':>9} {'model':>9} | {'hier/flat':>9} {'model':>9}")
    for b in sorted(measured["ring"]):
        mf, mh = measured["ring"][b] / 1e3, measured["hierarchical"][b] / 1e3
        pf, ph = flat(b) * 1e3, hier(b) * 1e3
        print(f"{b:>12} {mf:>9.2f} {pf:>9.2f} {mh:>9.2f} {ph:>9.2f} | {mf / mh:>9.2f} {pf / ph:>9.2f}")


if __name__ == "__main__":
    main()
