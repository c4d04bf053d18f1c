"""Experiments built on the core: each study uses the public layers below it and nothing uses
a study except the CLI (and other studies). compare, sweep, cloze, gradient diagnostics,
gradcheck, bench and plot."""
