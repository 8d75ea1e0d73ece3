#!/usr/bin/env python3
"""Splits profiles (inferno folded stacks from perf/profile.sh) into a few categories of work
and converts each share into CPU-microseconds per unit, to set Bayou beside the floor.
Usage: profile-categories.py A.folded CPU_US_PER_UNIT_A [B.folded CPU_US_PER_UNIT_B ...]
Categories overlap where stacks do (a send inside a request handler counts in both)."""
import sys, re
from collections import Counter
def load(path):
    tot=0; stacks=[]
    for line in open(path):
        st,_,n=line.rstrip('\n').rpartition(' ')
        if not n.isdigit(): continue
        n=int(n); tot+=n; stacks.append((st.split(';'),n))
    return tot,stacks
cats=[('tcp send (incl. loopback rx softirq)',['tcp_sendmsg']),('tcp recv',['tcp_recvmsg','sock_recvmsg']),
('eventfd write (wake another worker)',['__GI___libc_write']),('io_uring wait/schedule',['io_cqring_wait','schedule']),
('simd-json parse',['simd_json']),('http head parse',['parse_head','httparse']),('malloc/free (user)',['@malloc']),
('memcpy/memmove',['memcpy','memmove']),('mesh send/drain',['Mesh::try_send','Mesh::drain','Node::send']),
('engine deliver',['Engine::deliver']),('bayeux encode/reply',['Reply::write','write_array','publish::delivered']),
('Rust code, self time',None)]
for path,us in zip(sys.argv[1::2],sys.argv[2::2]):
    tot,stacks=load(path); us=float(us)
    print(f'== {path} ({us} CPU-us per message)')
    for name,keys in cats:
        n=0
        for st,c in stacks:
            if keys is None:
                leaf=st[-1]
                if not re.match(r'^[a-z_0-9.]+$',leaf) or '::' in leaf: n+=c
            elif keys==['@malloc']:
                if any(f in ('malloc','free','cfree','realloc','_int_malloc','_int_free','__libc_free','__libc_malloc','malloc_consolidate','_int_free_merge_chunk','__libc_realloc','_int_realloc') for f in st): n+=c
            elif any(k in f for f in st for k in keys): n+=c
        print(f'  {name:40s} {100*n/tot:5.1f}%  {us*n/tot:6.1f} us')
