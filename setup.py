"""The package's one compiled module; everything else is in setup.cfg.

``sonosd.gena._shape`` reads the speakers' own event shape in C (issue 17). It is optional:
where no C compiler is found the build goes on without it and sonosd reads every document
with the standard library's parsers, as it would a document the module declines.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "sonosd.gena._shape",
            ["sonosd/gena/_shape.c"],
            optional=True,
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        )
    ]
)
