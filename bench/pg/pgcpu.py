import os,sys
# Postgres cluster CPU seconds so far: the postmaster, its live children, and its reaped children.
pm=int(open(sys.argv[1]).readline())
tck=os.sysconf('SC_CLK_TCK')
def stat(p):
    f=open(f'/proc/{p}/stat').read().rsplit(')',1)[1].split()
    return f
tot=0
s=stat(pm); tot+=int(s[11])+int(s[12])+int(s[13])+int(s[14])
for p in os.listdir('/proc'):
    if not p.isdigit(): continue
    try:
        s=stat(p)
        if int(s[1])==pm: tot+=int(s[11])+int(s[12])
    except Exception: pass
print(tot/tck)
