"""Sessions: ``tests`` (what CI runs), ``report`` (the main product), ``soak``, ``bench``,
``gpu`` (the GPU-marked tests, on a machine with an NVIDIA GPU).

Every session installs under constraints.txt, which pins torch==2.13.0 (the CPU wheel on
local disk; anything else pulls a multi-GB CUDA build).
"""

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True
CONSTRAINTS = ("-c", "constraints.txt")


def install(session, extras: str) -> None:
    session.install(*CONSTRAINTS, f".[{extras}]")


@nox.session
def tests(session):
    """The whole test suite (pytest + Hypothesis), every backend installed."""
    install(session, "all")
    # the 30 slowest tests close the log: the suite must stay under 10 minutes, and this says where it goes
    session.run("pytest", "-q", "-p", "no:cacheprovider", "--durations=30", *session.posargs,
                env={"HYPOTHESIS_PROFILE": "ci"})


@nox.session
def report(session):
    """Write the report to report/ and say where to open it."""
    install(session, "torch,jax,report")
    session.run("bptt-xval", "report", "--out", "report", *session.posargs)


@nox.session
def soak(session):
    """At least 10,000 correct cases through the checker on Dask (a fresh seed each run unless
    --seed is given): the false-alarm count must be 0."""
    install(session, "torch,jax,soak")
    session.run("bptt-xval", "soak", *(session.posargs or ["--cases", "10000"]))


@nox.session
def bench(session):
    """Speed of manual BPTT against torch and jax, and the checker's cases per second."""
    install(session, "torch,jax,report")
    session.run("bptt-xval", "bench", *session.posargs)


@nox.session
def gpu(session):
    """The GPU-marked tests (docs/gpu.md). Needs torch and JAX built for CUDA: the constraints'
    CPU torch is replaced by the CUDA wheel you pass, e.g. nox -s gpu -- torch==2.13.0+cu128."""
    install(session, "all")
    if session.posargs:
        session.install(*session.posargs)
    session.run("pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu", "tests", env={"HYPOTHESIS_PROFILE": "ci"})
