"""Run a command with ``socket()`` limited to AF_UNIX, AF_INET and AF_INET6, as the systemd
unit's ``RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX`` limits sonosd: the same kind of
seccomp filter systemd installs, which makes ``socket()`` of any other family fail with
EAFNOSUPPORT (``socketpair()`` is not filtered, as under systemd).

``python tests/address_families.py COMMAND [ARGUMENT...]`` installs the filter (after
``PR_SET_NO_NEW_PRIVS``, as an unprivileged unit gets) and executes the command in its place,
so that the process started is the command's (tests/test_daemon_process.py passes it as the
``prefix`` of ``twistd``). x86_64 only: other architectures are not filtered.
"""

from __future__ import annotations

import ctypes
import os
import socket
import struct
import sys

#: seccomp's BPF: load a word of ``struct seccomp_data``, compare, return.
_LOAD, _JUMP_IF_EQUAL, _RETURN = 0x20, 0x15, 0x06
_ALLOW, _ERRNO = 0x7FFF0000, 0x00050000
_AUDIT_ARCH_X86_64, _SOCKET_X86_64 = 0xC000003E, 41
_EAFNOSUPPORT = 97
#: ``prctl`` options.
_PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 38, 22, 2

ALLOWED = (socket.AF_UNIX, socket.AF_INET, socket.AF_INET6)


def _statement(code: int, k: int) -> bytes:
    return struct.pack("HBBI", code, 0, 0, k)


def _jump(k: int, if_equal: int, otherwise: int) -> bytes:
    return struct.pack("HBBI", _JUMP_IF_EQUAL, if_equal, otherwise, k)


def program() -> list[bytes]:
    """The filter: on x86_64, ``socket()`` of a family not in ``ALLOWED`` fails."""
    unix, inet, inet6 = (int(family) for family in ALLOWED)
    return [
        _statement(_LOAD, 4),  # 0: the architecture
        _jump(_AUDIT_ARCH_X86_64, 0, 6),  # 1: another one: allowed (8)
        _statement(_LOAD, 0),  # 2: the system call
        _jump(_SOCKET_X86_64, 0, 4),  # 3: not socket(): allowed (8)
        _statement(_LOAD, 16),  # 4: its first argument, the family
        _jump(unix, 2, 0),  # 5
        _jump(inet, 1, 0),  # 6
        _jump(inet6, 0, 1),  # 7: none of them: refused (9)
        _statement(_RETURN, _ALLOW),  # 8
        _statement(_RETURN, _ERRNO | _EAFNOSUPPORT),  # 9
    ]


def restrict() -> None:
    """Install the filter on this process (and whatever it executes)."""
    code = b"".join(program())
    filters = ctypes.create_string_buffer(code)
    fprog = struct.pack("HxxxxxxP", len(code) // 8, ctypes.addressof(filters))
    libc = ctypes.CDLL(None, use_errno=True)
    for arguments in (
        (_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0),
        (_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.c_char_p(fprog), 0, 0),
    ):
        if libc.prctl(*arguments) != 0:
            error = ctypes.get_errno()
            raise OSError(error, os.strerror(error))


if __name__ == "__main__":
    restrict()
    os.execv(sys.argv[1], sys.argv[1:])
