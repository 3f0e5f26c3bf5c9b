"""Shell scripts that run inside the agent pod's network namespace (exec or ephemeral container).

Every rule carries the comment `chaosstream-<partition id>`, so healing finds exactly our rules; every
script is idempotent, and each partition carries its own dead-man timer.
"""

from typing import List

__all__ = [
    "RULE_TAG",
    "inject_script",
    "heal_script",
    "exec_script",
    "ephemeral_script",
    "count_and_heal_script",
]

RULE_TAG = "chaosstream-"


def quote(text: str) -> str:
    """Single-quote for sh."""
    return "'" + text.replace("'", "'\\''") + "'"


def inject_script(ports: List[int], tag: str) -> str:
    return " && ".join(
        f"iptables -I OUTPUT -p tcp --dport {p} -m comment --comment {tag} -j DROP" for p in ports
    )


def heal_script(tag: str) -> str:
    """Remove every OUTPUT rule whose comment starts with `tag` and stop the partition's own timer
    process (its pid file is /tmp/<tag>*.pid, in the container that runs it); idempotent."""
    return (
        f"iptables -S OUTPUT | grep -- '--comment {tag}' | sed 's/^-A /-D /' | "
        "while read -r rule; do iptables $rule; done; "
        f'for f in /tmp/{tag}*.pid; do [ -f "$f" ] || continue; p=$(cat "$f"); rm -f "$f"; '
        'pkill -P "$p" 2>/dev/null; kill "$p" 2>/dev/null; done; true'
    )


def count_and_heal_script(tag: str) -> str:
    """Print how many of our rules were there (0 when none: one round trip), then heal."""
    return f"iptables -S OUTPUT | grep -c -- '--comment {tag}'; " + heal_script(tag)


def timer_script(tag: str, seconds: int) -> str:
    """A dead-man timer: heals after `seconds`; `heal_script` stops it early through its pid file."""
    return f"echo $$ > /tmp/{tag}.pid; sleep {seconds}; {heal_script(tag)}"


def exec_script(ports: List[int], tag: str, seconds: int) -> str:
    """Inject, then leave a detached dead-man timer in the container."""
    return (
        f"{inject_script(ports, tag)} && (nohup sh -c {quote(timer_script(tag, seconds))} >/dev/null 2>&1 &)"
    )


def ephemeral_script(ports: List[int], tag: str, seconds: int) -> str:
    """The ephemeral container's main process is the timer: healed early (SIGTERM or the heal's kill), it
    removes the rules and exits, and with it the container."""
    heal = heal_script(tag)
    return (
        f"{inject_script(ports, tag)} || exit 1; echo $$ > /tmp/{tag}.pid; "
        f"trap {quote(heal + '; kill $s 2>/dev/null; exit 0')} TERM INT; "
        f"sleep {seconds} & s=$!; wait $s; {heal}"
    )
