#!/usr/bin/env python3
"""Writes the seed corpora of fuzz/fuzz_cid.c, fuzz_dagpb.c and fuzz_unixfs.c
(fuzz/corpus/{cid,dagpb,unixfs}/): valid CIDs, blocks and UnixFS data as Kubo
writes them, plus truncated, reordered and hostile variants. Standard library
only; run from the repository root."""
import hashlib
import os


def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def field_bytes(num, b):
    return varint(num << 3 | 2) + varint(len(b)) + b


def field_varint(num, v):
    return varint(num << 3) + varint(v)


def cid_v0(block):
    return b"\x12\x20" + hashlib.sha256(block).digest()


def cid_v1(codec, block):
    return b"\x01" + varint(codec) + b"\x12\x20" + hashlib.sha256(block).digest()


def unixfs(typ, data=None, filesize=None, blocksizes=(), hash_type=None, fanout=None):
    out = field_varint(1, typ)
    if data is not None:
        out += field_bytes(2, data)
    if filesize is not None:
        out += field_varint(3, filesize)
    for b in blocksizes:
        out += field_varint(4, b)
    if hash_type is not None:
        out += field_varint(5, hash_type)
    if fanout is not None:
        out += field_varint(6, fanout)
    return out


def pb_node(links, data):
    out = b""
    for cid, name, tsize in links:
        inner = field_bytes(1, cid)
        if name is not None:
            inner += field_bytes(2, name)
        if tsize is not None:
            inner += field_varint(3, tsize)
        out += field_bytes(2, inner)
    if data is not None:
        out += field_bytes(1, data)
    return out


def write(folder, name, data):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def main():
    hello = pb_node([], unixfs(2, b"hello world\n", 12))
    leaf2 = pb_node([], unixfs(2, b"x" * 10, 10))
    root = pb_node([(cid_v0(hello), b"", len(hello)), (cid_v0(leaf2), b"", len(leaf2))],
                   unixfs(2, None, 22, (12, 10)))
    empty_dir = pb_node([], unixfs(1))
    directory = pb_node([(cid_v0(hello), "caf\u00e9.txt".encode(), len(hello)),
                         (cid_v1(0x55, b"raw"), b"raw", 3)], unixfs(1))
    shard = pb_node([(cid_v0(hello), b"0Ahello", len(hello)), (cid_v0(empty_dir), b"FF", 4)],
                    unixfs(5, bytes([0x80] + [0] * 30 + [0x04]), None, (), 0x22, 256))
    symlink = pb_node([], unixfs(4, b"../target"))

    d = "fuzz/corpus/dagpb"
    for name, block in [("hello_leaf", hello), ("file_root", root), ("empty_dir", empty_dir),
                        ("directory", directory), ("hamt_shard", shard), ("symlink", symlink),
                        ("empty_block", b"")]:
        write(d, name, block)
    write(d, "bad_data_before_links", field_bytes(1, b"\x08\x01") + field_bytes(2, b""))
    write(d, "bad_truncated", root[:-5])
    write(d, "bad_huge_length", b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\x7f")
    write(d, "bad_link_no_hash", field_bytes(2, field_varint(3, 5)))

    u = "fuzz/corpus/unixfs"
    for name, data in [("file_leaf", unixfs(2, b"hello world\n", 12)),
                       ("file_root", unixfs(2, None, 22, (12, 10))),
                       ("directory", unixfs(1)),
                       ("hamt", unixfs(5, bytes([0x80] + [0] * 31), None, (), 0x22, 256)),
                       ("symlink", unixfs(4, b"../target")),
                       ("packed_mtime", bytes.fromhex("0802180322020102" "38a403" "42020801")),
                       ("empty_file", unixfs(2, None, 0))]:
        write(u, name, data)
    write(u, "bad_no_type", field_varint(3, 5))
    write(u, "bad_fanout", unixfs(5, b"\x01", None, (), 0x22, 3))
    write(u, "bad_blocksizes_huge", b"\x08\x02" + b"\x22\xff\xff\xff\xff\x0f")

    c = "fuzz/corpus/cid"
    for name, text in [("v0", "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"),
                       ("v1_base32", "bafybeicg2rebjoofv4kbyovkw7af3rpiitvnl6i7ckcywaq6xjcxnc2mby"),
                       ("v1_raw", "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"),
                       ("v1_base36", "k2jmtxt4nv2kx0qz1ncwpjwzdixb27xsgqxk7kgho4nnmjceustvi80e"),
                       ("v1_base16", "f0170122046d44814b9c5af141c3aaab7c05dc5e844ead5f91f12858b021eba45768b4c0e"),
                       ("v1_upper", "BAFYBEICG2REBJOOFV4KBYOVKW7AF3RPIITVNL6I7CKCYWAQ6XJCXNC2MBY"),
                       ("identity", "bafkqaaa"),
                       ("bad_char", "bafybeicg2rebjoofv4kbyovkw7af3rpiitvnl6i7ckcywaq6xjcxnc2mb0"),
                       ("bad_prefix", "mAXASIA")]:
        write(c, name, text.encode())
    write(c, "binary_v1", cid_v1(0x70, b"x"))
    write(c, "binary_v0", cid_v0(b"x"))
    write(c, "binary_nonminimal", b"\x01\xf0\x00\x12\x20" + bytes(32))


if __name__ == "__main__":
    main()
