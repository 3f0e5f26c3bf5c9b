"""Shell scripts that run inside the agent pod's network namespace (exec or ephemeral container).

A partition drops exactly the agent's route to the control plane: each destination is an
(address, port) pair, dropped leaving (OUTPUT, `-d A --dport P`) and arriving (INPUT, `-s A --sport P`),
with `iptables` for IPv4 and `ip6tables` for IPv6 — never a bare port. Every rule carries the comment
`chaosstream-<partition id>`, so healing finds exactly our rules; every script is idempotent, and each
partition carries its own dead-man timer and an absolute deadline: a script that starts after its
deadline (a late image pull) changes nothing.
"""

import ipaddress
from typing import Any, Iterable, List, Sequence, Tuple

__all__ = [
    "RULE_TAG",
    "Destination",
    "inject_script",
    "heal_script",
    "exec_script",
    "ephemeral_script",
    "count_and_heal_script",
    "count_script",
    "probe_script",
    "crash_script",
    "hang_script",
    "hang_state_script",
    "thaw_script",
]

RULE_TAG = "chaosstream-"
Destination = Tuple[str, int]
_TOOLS = ("iptables", "ip6tables")
_CHAINS = ("OUTPUT", "INPUT")


def quote(text: str) -> str:
    """Single-quote for sh."""
    return "'" + text.replace("'", "'\\''") + "'"


def _tool(address: str) -> str:
    return "ip6tables" if ipaddress.ip_address(address).version == 6 else "iptables"


def _normalise(destinations: Iterable[Any]) -> List[Destination]:
    out: List[Destination] = []
    for item in destinations:
        if isinstance(item, int):
            raise ValueError("a partition rule needs a destination address, not a bare port")
        address, port = item
        ipaddress.ip_address(address)  # raises on a name: the route is resolved before we get here
        out.append((str(address), int(port)))
    return out


def inject_script(destinations: Sequence[Destination], tag: str) -> str:
    """Insert the DROP rules for every destination, both directions; fails (exit 3) when IPv6 rules are
    needed and `ip6tables` is missing, before inserting anything."""
    dests = _normalise(destinations)
    if not dests:
        raise ValueError("a partition needs at least one destination")
    checks = []
    if any(_tool(a) == "ip6tables" for a, _ in dests):
        checks.append(
            "command -v ip6tables >/dev/null 2>&1 || { echo 'ip6tables is missing: cannot drop the IPv6 route' >&2; exit 3; }"
        )
    rules = []
    for address, port in dests:
        tool = _tool(address)
        comment = f"-m comment --comment {tag} -j DROP"
        rules.append(f"{tool} -I OUTPUT -p tcp -d {address} --dport {port} {comment}")
        rules.append(f"{tool} -I INPUT -p tcp -s {address} --sport {port} {comment}")
    return "; ".join(checks + [" && ".join(rules)])


def heal_script(tag: str) -> str:
    """Remove every OUTPUT/INPUT rule (IPv4 and IPv6) whose comment starts with `tag` and stop the
    partition's own timer process (its pid file is /tmp/<tag>*.pid, in the container that runs it);
    idempotent."""
    parts = []
    for tool in _TOOLS:
        for chain in _CHAINS:
            parts.append(
                f"{{ command -v {tool} >/dev/null 2>&1 && {tool} -S {chain} 2>/dev/null | "
                f"grep -- '--comment {tag}' | sed 's/^-A /-D /' | "
                f"while read -r rule; do {tool} $rule; done; }}"
            )
    return (
        "; ".join(parts)
        + f'; for f in /tmp/{tag}*.pid; do [ -f "$f" ] || continue; p=$(cat "$f"); rm -f "$f"; '
        'pkill -P "$p" 2>/dev/null; kill "$p" 2>/dev/null; done; true'
    )


def count_script(tag: str) -> str:
    """Print how many of our rules are in place (IPv4 and IPv6, both chains)."""
    return (
        "n=0; for t in iptables ip6tables; do command -v $t >/dev/null 2>&1 || continue; "
        f"c=$($t -S 2>/dev/null | grep -c -- '--comment {tag}'); n=$((n + c)); done; echo $n"
    )


def count_and_heal_script(tag: str) -> str:
    """Print how many of our rules were there (0 when none: one round trip), then heal."""
    return count_script(tag) + "; " + heal_script(tag)


def _deadline_guard(deadline: int) -> str:
    """Exit at once (changing nothing) when started at or after `deadline` (epoch seconds); else set
    `$left` to the seconds remaining."""
    return f'now=$(date +%s); [ "$now" -lt {deadline} ] || exit 0; left=$(({deadline} - now))'


def timer_script(tag: str, deadline: int) -> str:
    """A dead-man timer: heals at `deadline`; `heal_script` stops it early through its pid file."""
    return (
        f'echo $$ > /tmp/{tag}.pid; left=$(({deadline} - $(date +%s))); [ "$left" -gt 0 ] && sleep "$left"; '
        f"{heal_script(tag)}"
    )


def exec_script(destinations: Sequence[Destination], tag: str, deadline: int) -> str:
    """Inject (unless past `deadline`), then leave a detached dead-man timer in the container."""
    return (
        f"{_deadline_guard(deadline)}; {inject_script(destinations, tag)} && "
        f"(nohup sh -c {quote(timer_script(tag, deadline))} >/dev/null 2>&1 &)"
    )


def ephemeral_script(destinations: Sequence[Destination], tag: str, deadline: int) -> str:
    """The ephemeral container's main process is the timer: healed early (SIGTERM or the heal's kill), it
    removes the rules and exits, and with it the container. Started after `deadline`, it does nothing."""
    heal = heal_script(tag)
    return (
        f"{_deadline_guard(deadline)}; "
        f"trap {quote(heal + '; kill $s 2>/dev/null; exit 0')} TERM INT; "
        f"{inject_script(destinations, tag)} || {{ {heal}; exit 1; }}; echo $$ > /tmp/{tag}.pid; "
        f'sleep "$left" & s=$!; wait $s; {heal}'
    )


def probe_script(tag: str, cut: Sequence[Destination], reachable: Sequence[Destination], wait: float) -> str:
    """Verify a partition from inside the pod's network namespace.

    Waits up to `wait` seconds for our rules to be in place, then tries a TCP connect (2 s) to every
    destination: prints `rules N`, then `cut A P open|closed` and `keep A P open|closed` lines."""
    probe = (
        'probe() { if command -v nc >/dev/null 2>&1; then nc -z -w 2 "$1" "$2" >/dev/null 2>&1; '
        "elif command -v python3 >/dev/null 2>&1; then python3 -c "
        "'import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 2).close()' "
        '"$1" "$2" >/dev/null 2>&1; '
        'else timeout 2 bash -c "</dev/tcp/$1/$2" >/dev/null 2>&1; fi; }'
    )
    lines = [
        probe,
        f"i=0; while [ $i -lt {max(1, int(wait * 10))} ]; do n=$({count_script(tag)}); "
        '[ "$n" -gt 0 ] && break; sleep 0.1; i=$((i + 1)); done; echo "rules $n"',
    ]
    for kind, dests in (("cut", cut), ("keep", reachable)):
        for address, port in dests:
            lines.append(
                f'( if probe {address} {port}; then echo "{kind} {address} {port} open"; '
                f'else echo "{kind} {address} {port} closed"; fi ) &'
            )
    lines.append("wait")
    return "\n".join(lines)


# The agent process, seen from a container sharing its PID namespace (an ephemeral container targeting the
# agent container): PID 1, unless PID 1 is an init (tini, a shared namespace's pause), then its oldest child.
_FIND_AGENT = (
    "t=$(for d in /proc/[0-9]*; do p=${d#/proc/}; "
    '[ "$(awk \'/^PPid:/{print $2}\' "$d/status" 2>/dev/null)" = 1 ] && echo "$p"; done | sort -n | head -1); '
    '[ -n "$t" ] || t=1'
)


def crash_script() -> str:
    """Kill the agent process with no chance to say goodbye: SIGKILL, or SIGQUIT when it is PID 1 (the
    kernel ignores SIGKILL sent to a namespace's init from inside; a Go program dies on SIGQUIT)."""
    return (
        f"{_FIND_AGENT}; "
        'if [ "$t" = 1 ]; then kill -s QUIT 1; else kill -s KILL "$t"; fi && echo "crashed $t"'
    )


def hang_script(tag: str, deadline: int) -> str:
    """Freeze the agent process (SIGSTOP) until `deadline`, then thaw it (SIGCONT); healed early by
    SIGTERM to this script (its pid is /tmp/<tag>.pid). Started after `deadline`, it does nothing."""
    thaw = f'kill -s CONT "$t" 2>/dev/null; rm -f /tmp/{tag}.target /tmp/{tag}.pid'
    return (
        f"{_deadline_guard(deadline)}; {_FIND_AGENT}; "
        'if [ "$t" = 1 ]; then echo "the agent is PID 1 in its container: the kernel ignores SIGSTOP sent to it '
        'from inside the pod (run it under an init such as tini, or set shareProcessNamespace)" >&2; exit 4; fi; '
        f'echo "$t" > /tmp/{tag}.target; echo $$ > /tmp/{tag}.pid; '
        f"trap {quote(thaw + '; kill $s 2>/dev/null; exit 0')} TERM INT; "
        f'kill -s STOP "$t"; sleep "$left" & s=$!; wait $s; {thaw}'
    )


def hang_state_script(tag: str, wait: float) -> str:
    """Print `frozen <pid>` when the hang is in place (the process is stopped), else `not-frozen`."""
    return (
        f"i=0; while [ ! -f /tmp/{tag}.target ] && [ $i -lt {max(1, int(wait * 10))} ]; do sleep 0.1; i=$((i + 1)); done; "
        f"t=$(cat /tmp/{tag}.target 2>/dev/null); "
        "s=$(awk '/^State:/{print $2}' /proc/$t/status 2>/dev/null); "
        'if [ -n "$t" ] && [ "$s" = T ]; then echo "frozen $t"; else echo "not-frozen $t $s"; fi'
    )


def thaw_script(tag: str) -> str:
    """End a hang early: print 1 if it was in place (0 otherwise) and stop its timer (whose trap thaws)."""
    return (
        f"if [ -f /tmp/{tag}.pid ]; then echo 1; t=$(cat /tmp/{tag}.target 2>/dev/null); "
        f'kill -s TERM "$(cat /tmp/{tag}.pid)" 2>/dev/null; [ -n "$t" ] && kill -s CONT "$t" 2>/dev/null; '
        "else echo 0; fi; true"
    )
