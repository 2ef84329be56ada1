"""Independent Python implementation of plm's per-epoch sample permutation (data/sample_order.h).

Prints the vectors that tests/data/sample_order_test.cc expects, so the C++ order is checked against a
second implementation written from the header comment alone. Standard library only:
    python3 tools/reference/sample_order_reference.py
"""

MASK = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15


def mix(z):
    """One splitmix64 step from state z."""
    z = (z + GAMMA) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def epoch_permutation(n, seed, epoch):
    key = mix(mix(seed) ^ epoch)
    counter = 0
    p = list(range(n))
    for i in range(n - 1, 0, -1):
        bound = i + 1
        remainder = (1 << 64) % bound
        while True:
            r = mix((key + counter * GAMMA) & MASK)
            counter += 1
            if remainder == 0 or r < (1 << 64) - remainder:
                break
        j = r % bound
        p[i], p[j] = p[j], p[i]
    return p


if __name__ == "__main__":
    for n, seed, epoch in [(10, 1234, 0), (10, 1234, 1), (10, 0, 0), (7, 2**64 - 1, 3)]:
        print(f"n={n} seed={seed} epoch={epoch}: {epoch_permutation(n, seed, epoch)}")
