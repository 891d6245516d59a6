#!/usr/bin/env python3
"""Summarize a system-wide `perf record -a -g` of a benchmark: CPU share per thread name and per
kind of work (kernel time split by call chain into disk sync, TCP loopback and scheduling; user
time by library of the leaf frame). Usage: scripts/perf-classify.py perf.data
See bench/PROFILE.md for how it was used."""
import sys, subprocess, collections, re
data = sys.argv[1]
out = subprocess.run(["perf", "script", "-i", data, "-F", "comm,ip,sym,dso"], capture_output=True, text=True).stdout
samples = out.split("\n\n")
by_thread = collections.Counter(); by_cat = collections.Counter(); total = 0
# kernel categories by call chain content
def cat(frames):
    leaf = frames[0] if frames else ""
    chain = " ".join(frames)
    if "kernel" in leaf or "[unknown]" in leaf and "kallsyms" in leaf:
        if re.search(r"fsync|fdatasync|jbd2|ext4|blk_|virtio|iowrite", chain): return "kernel: disk sync (fdatasync/virtio)"
        if re.search(r"tcp_|inet_|sock_|__sys_sendto|__sys_recvfrom|sendmsg|recvmsg|ip_|loopback|net_rx|__napi|skb", chain): return "kernel: TCP loopback"
        if re.search(r"futex|schedule|finish_task_switch|try_to_wake_up|epoll|pick_next|enqueue_task|dequeue", chain): return "kernel: scheduling/wakeups (futex, epoll, context switch)"
        if "pv_native_safe_halt" in chain or "do_idle" in chain: return "idle"
        return "kernel: other"
    if re.search(r"rocksdb|librocksdb", leaf): return "user: RocksDB"
    if re.search(r"malloc|free|_int_|realloc|cfree|memmove|memcpy|memset|memcmp", leaf): return "user: malloc/free/memcpy"
    if re.search(r"aes|Aes|ghash|gcm|hmac|Hmac|sha2|sha256|Sha|ring::|polyval", leaf): return "user: crypto (cookie AES-GCM, HMAC)"
    if re.search(r"bincode|serde|json", leaf): return "user: encode/decode (bincode, serde_json)"
    if re.search(r"hyper|reqwest|h2::|http::|url::|idna", leaf): return "user: HTTP client (reqwest/hyper: peer RPC + load tool)"
    if re.search(r"actix|awc", leaf): return "user: actix-web/actix-session"
    if re.search(r"tokio|mio|parking_lot|crossbeam", leaf): return "user: tokio runtime"
    if re.search(r"openraft", leaf): return "user: openraft"
    if re.search(r"sessionraft", leaf): return "user: sessionraft code"
    return "user: other"
for s in samples:
    lines = [l for l in s.strip().split("\n") if l.strip()]
    if not lines: continue
    head = lines[0].strip()
    comm = head.split()[0] if head else "?"
    frames = [l.strip() for l in lines[1:]]
    total += 1
    comm = re.sub(r"-\d+$", "", comm)
    by_thread[comm] += 1
    by_cat[cat(frames)] += 1
print(f"samples: {total}")
print("by thread name:")
for k, v in by_thread.most_common(12): print(f"  {k:28s} {100*v/total:5.1f}%")
print("by what the CPU was doing (leaf frame, kernel classified by call chain):")
for k, v in by_cat.most_common(): print(f"  {k:62s} {100*v/total:5.1f}%")
