#!/usr/bin/env python3
"""Builds the symbol table a panic or fault report names functions with (the kernel's
kernel/core/SymbolTable.swift reads it; docs/ARCHITECTURE.md, "Symbol tables").

From a linked ELF it takes every function symbol (llvm-nm), demangles the Swift names to their
short form (swift-demangle --simplified), adds the file and line where each function begins when
the ELF has line tables (llvm-symbolizer), and writes one little-endian blob:

  header   48 bytes: magic "KSYM", version 1, token count, entry count, file count, the link
           address the entries are relative to (base), then the offsets of the entries, the file
           table, the token table and the string area, the string area's size and the total size
  entries  16 bytes each, sorted by start: start - base, size, name (offset in the string area),
           location ((file index + 1) << 20 | line; 0 when unknown)
  files    4 bytes each: offset of the path in the string area
  tokens   4 bytes each: offset of the token's text in the string area
  strings  NUL-terminated; a name's byte 0x80 + i stands for token i (frequent pieces such as
           "SystemCall." or ".getter"), every other byte is itself

Modes:
  --object OUT.o ELF     the kernel's table, as a relocatable object whose one section,
                         .kernel_symbols, the kernel's linker script places after .text
  --check ELF            the table inside a linked kernel equals a fresh one from that ELF: the
                         second link moved no function
  --blob OUT ELF         the table alone (a user program's, which the Makefile packs into a cpio
                         archive of tables, one file per program named like it)
  --bundle RAMDISK TABLES  appends the archive of tables to the ramdisk's archive of programs,
                         zeros to end on a page, then a 16-byte trailer: the appended size (8
                         bytes) and "SKSYMTAB". The kernel finds the tables by the trailer; the
                         memory object init gets covers the programs' archive only, so loaders
                         never map the tables
"""
from __future__ import annotations

import argparse
import collections
import os
import re
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

MAGIC = b"KSYM"
VERSION = 1
HEADER = struct.Struct("<4sHHII Q IIII II")
ENTRY = struct.Struct("<IIII")
TRAILER_MAGIC = b"SKSYMTAB"
MAXIMUM_TOKENS = 128
MAXIMUM_FILES = 4095
MAXIMUM_LINE = (1 << 20) - 1
ROOT = Path(__file__).resolve().parent.parent


def tool(bin_dir: str, name: str) -> str:
    path = Path(bin_dir) / name
    return str(path) if path.exists() else name


def function_symbols(elf: Path, bin_dir: str) -> list[tuple[int, int, str]]:
    """(address, size, mangled name) of every symbol in executable code, one per address. A label
    without a size (assembly) reaches to the next symbol."""
    output = subprocess.run([tool(bin_dir, "llvm-nm"), "--defined-only", "-S", "-n", str(elf)], check=True,
                            stdout=subprocess.PIPE, text=True).stdout
    by_address: dict[int, tuple[int, str]] = {}
    for line in output.splitlines():
        fields = line.split()
        if len(fields) == 4:
            address, size, kind, name = int(fields[0], 16), int(fields[1], 16), fields[2], fields[3]
        elif len(fields) == 3:
            address, size, kind, name = int(fields[0], 16), 0, fields[1], fields[2]
        else:
            continue
        if kind not in "tTwW" or name.startswith(("$x", "$d", ".L")) or name.endswith(("_of_image",)):
            continue
        previous = by_address.get(address)
        # Of several names for one address keep the one with a size, then the shortest.
        if previous is None or (size, -len(name)) > (previous[0], -len(previous[1])):
            by_address[address] = (size, name)
    addresses = sorted(by_address)
    symbols = []
    for index, address in enumerate(addresses):
        size, name = by_address[address]
        if size == 0 and index + 1 < len(addresses):
            size = addresses[index + 1] - address
        if size > 0:
            symbols.append((address, size, name))
    return symbols


def demangle(names: list[str], bin_dir: str) -> list[str]:
    process = subprocess.run([tool(bin_dir, "swift-demangle"), "--simplified"], input="\n".join(names) + "\n",
                             check=True, stdout=subprocess.PIPE, text=True)
    readable = process.stdout.split("\n")[:len(names)]
    return [shorten(name) for name in readable]


def shorten(name: str) -> str:
    """Short forms of the demangler's longer phrases."""
    name = name.replace("variable initialization expression of ", "initial value of ")
    name = name.replace("one-time initialization function for ", "one-time initializer of ")
    name = re.sub(r"\s+", " ", name)
    return name.encode("ascii", "replace").decode("ascii")[:200]


def locations(elf: Path, addresses: list[int], bin_dir: str) -> list[tuple[str, int] | None]:
    """The file (relative to the source tree when inside it) and line of each address, from the
    ELF's line tables; None where there are none."""
    try:
        process = subprocess.run([tool(bin_dir, "llvm-symbolizer"), f"--obj={elf}", "--no-inlines",
                                  "--functions=none", "--output-style=GNU"],
                                 input="".join(f"0x{address:x}\n" for address in addresses),
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    except OSError:  # no llvm-symbolizer: names without files and lines
        return [None] * len(addresses)
    if process.returncode != 0:
        return [None] * len(addresses)
    results: list[tuple[str, int] | None] = []
    for line in process.stdout.splitlines()[:len(addresses)]:
        path, _, number = line.rpartition(":")
        number = number.split()[0] if number else "0"
        if not path or path.startswith("??") or "<compiler-generated>" in path or not number.isdigit() \
                or int(number) == 0:
            results.append(None)
            continue
        try:
            path = os.path.relpath(path, ROOT) if os.path.isabs(path) else path
        except ValueError:
            pass
        if path.startswith(".."):
            path = Path(path).name
        results.append((path, min(int(number), MAXIMUM_LINE)))
    results += [None] * (len(addresses) - len(results))
    return results


def choose_tokens(names: list[str]) -> list[str]:
    """Up to 128 frequent pieces of names (words with their dot, phrases such as "static "),
    chosen by the bytes they save."""
    counts: collections.Counter[str] = collections.Counter()
    for name in set(names):
        for piece in re.findall(r"[A-Za-z_][A-Za-z0-9_]*\.?|[(:)<>, ]+|\.[a-z]+", name):
            if len(piece) > 2:
                counts[piece] += 1
        for phrase in re.findall(r"(?:static |specialized |closure #\d+ in |initial value of |generic )", name):
            counts[phrase] += 1
    savings = sorted(counts.items(), key=lambda item: (-(item[1] * (len(item[0]) - 1) - len(item[0])), item[0]))
    return [piece for piece, _ in savings[:MAXIMUM_TOKENS] if len(piece) <= 63]


def encode(name: str, tokens: list[str], pattern: re.Pattern | None) -> bytes:
    if pattern is None:
        return name.encode("ascii")
    index = {token: position for position, token in enumerate(tokens)}
    out = bytearray()
    position = 0
    for match in pattern.finditer(name):
        out += name[position:match.start()].encode("ascii")
        out.append(0x80 + index[match.group(0)])
        position = match.end()
    out += name[position:].encode("ascii")
    return bytes(out)


def build(elf: Path, bin_dir: str, with_lines: bool = True) -> bytes:
    symbols = function_symbols(elf, bin_dir)
    names = demangle([name for _, _, name in symbols], bin_dir)
    places = locations(elf, [address for address, _, _ in symbols], bin_dir) if with_lines else [None] * len(symbols)
    base = symbols[0][0] & ~0xFFF if symbols else 0
    return pack(base, [(address - base, size, name, place)
                       for (address, size, _), name, place in zip(symbols, names, places)])


def pack(base: int, entries: list[tuple[int, int, str, tuple[str, int] | None]]) -> bytes:
    """The blob for entries (start relative to base, size, readable name, (file, line) or None)."""
    entries = sorted(entries, key=lambda entry: entry[0])
    tokens = choose_tokens([name for _, _, name, _ in entries])
    pattern = re.compile("|".join(re.escape(token) for token in sorted(tokens, key=len, reverse=True))) \
        if tokens else None

    strings = bytearray(b"\0")
    interned: dict[bytes, int] = {}

    def intern(data: bytes) -> int:
        if data not in interned:
            interned[data] = len(strings)
            strings.extend(data + b"\0")
        return interned[data]

    token_offsets = [intern(token.encode("ascii")) for token in tokens]
    files: list[str] = []
    file_index: dict[str, int] = {}
    packed_entries = bytearray()
    for start, size, name, place in entries:
        location = 0
        if place is not None:
            path, line = place
            if path not in file_index and len(files) < MAXIMUM_FILES:
                file_index[path] = len(files)
                files.append(path)
            if path in file_index:
                location = (file_index[path] + 1) << 20 | line
        packed_entries += ENTRY.pack(start, min(size, 0xFFFF_FFFF), intern(encode(name, tokens, pattern)), location)
    file_offsets = [intern(path.encode("ascii", "replace")) for path in files]

    entries_offset = HEADER.size
    files_offset = entries_offset + len(packed_entries)
    tokens_offset = files_offset + 4 * len(files)
    strings_offset = tokens_offset + 4 * len(tokens)
    total = strings_offset + len(strings)
    total += -total % 8
    header = HEADER.pack(MAGIC, VERSION, len(tokens), len(entries), len(files), base, entries_offset, files_offset,
                         tokens_offset, strings_offset, len(strings), total)
    blob = header + packed_entries + struct.pack(f"<{len(files)}I", *file_offsets) \
        + struct.pack(f"<{len(tokens)}I", *token_offsets) + strings
    return blob + b"\0" * (total - len(blob))


def section_contents(elf: Path, section: str) -> bytes:
    """The bytes of one section of an ELF64 little-endian file."""
    data = elf.read_bytes()
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    headers = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + index * shentsize) for index in range(shnum)]
    names_offset = headers[shstrndx][4]
    for header in headers:
        name = data[names_offset + header[0]:data.index(b"\0", names_offset + header[0])].decode()
        if name == section:
            return data[header[4]:header[4] + header[5]]
    raise SystemExit(f"{elf}: no section {section}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=os.environ.get("SWIFT_BIN", "/opt/swift/usr/bin"),
                        help="directory of llvm-nm, swift-demangle, llvm-symbolizer, llvm-objcopy")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--object", type=Path)
    mode.add_argument("--check", action="store_true")
    mode.add_argument("--blob", type=Path)
    mode.add_argument("--bundle", type=Path, metavar="RAMDISK")
    parser.add_argument("--no-lines", action="store_true", help="leave out files and lines")
    parser.add_argument("input", type=Path, help="the linked ELF; with --bundle, the archive of tables")
    options = parser.parse_args()

    if options.bundle:
        # Zeros after the tables' archive (a reader stops at its TRAILER!!! entry) end the whole
        # ramdisk on a page, so that the boot log gives its size in KiB.
        tables = options.input.read_bytes()
        tables += b"\0" * (-(options.bundle.stat().st_size + len(tables) + 16) % 4096)
        with options.bundle.open("ab") as file:
            file.write(tables + struct.pack("<Q", len(tables)) + TRAILER_MAGIC)
        return 0
    options.elf = options.input
    blob = build(options.elf, options.bin, with_lines=not options.no_lines)
    if options.check:
        embedded = section_contents(options.elf, ".kernel_symbols")
        if embedded != blob:
            print(f"{options.elf}: the embedded symbol table does not match the linked functions", file=sys.stderr)
            return 1
        return 0
    if options.blob:
        options.blob.write_bytes(blob)
    else:
        with tempfile.TemporaryDirectory() as scratch:
            raw = Path(scratch) / "symbols.bin"
            raw.write_bytes(blob)
            subprocess.run([tool(options.bin, "llvm-objcopy"), "-I", "binary", "-O", "elf64-littleaarch64",
                            "--rename-section", ".data=.kernel_symbols,alloc,load,readonly,data,contents",
                            "--set-section-alignment", ".kernel_symbols=8", str(raw), str(options.object)],
                           check=True)
    if options.object:
        print(f"{options.elf.name}: {len(blob)} bytes of symbols "
              f"({struct.unpack_from('<I', blob, 8)[0]} functions)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
