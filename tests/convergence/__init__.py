"""Convergence: end-to-end runs of the simulator (a simulated Optiqo source, chaos, a
real receiver, a destination restarted mid-run) that must end with the destination equal
to the source, and the pieces of the convergence check itself (docs/convergence.md).
Slow by nature: a test belongs here only when nothing smaller proves it.
"""
