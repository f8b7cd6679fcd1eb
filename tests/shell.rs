//! Boot tests of the shell and the commands: scripts that exercise each construct of the
//! language (written to `/tmp` through a here-document typed at the prompt, then run with
//! `sh`), script errors that name their line, `#!` scripts, a script that traps TERM while
//! blocked in `wait` and cleans up when killed, ^C interrupting a foreground `sleep`, history,
//! `ps` output, and every command's normal use and its failures.
//!
//! Each test boots one machine and runs many checks in it, to stay fast under emulation.
//! Skips loudly only when QEMU is absent and cannot be installed (outside CI).

mod common;

use qemu_test::{Machine, tools};
use std::time::{Duration, Instant};

/// Generous: the machine is shared and emulation is slow; a hang still ends the test.
const TIMEOUT: Duration = Duration::from_secs(120);

/// Boots the OS to its shell prompt, or `None` (loudly) if QEMU is not available.
fn boot(test: &str) -> Option<Machine> {
    common::available(tools::QEMU).then(|| common::start(&common::qemu(test), TIMEOUT))
}

/// Types `line` and returns what it printed before the next prompt.
fn run(m: &mut Machine, line: &str) -> String {
    m.run(line, TIMEOUT)
        .unwrap_or_else(|e| panic!("running {line:?}: {e}"))
}

/// Types `line` and gives the command time to start (the shell has echoed the line and
/// handed the console back to its line discipline, where ^C posts a note).
fn start_foreground(m: &mut Machine, line: &str) {
    m.send_line(line).unwrap();
    m.wait_for(&format!("{line}\n"), TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    std::thread::sleep(Duration::from_millis(500));
}

/// Writes `text` to `path` with a here-document typed at the prompt.
fn write_file(m: &mut Machine, path: &str, text: &str) {
    let mut input = format!("cat > {path} <<'END_OF_FILE'\r");
    for line in text.lines() {
        input.push_str(line);
        input.push('\r');
    }
    input.push_str("END_OF_FILE\r");
    m.send(input.as_bytes()).unwrap();
    let out = m.wait_prompt(TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    assert!(!out.contains("syntax error"), "writing {path}:\n{out}");
}

/// Runs `script` with `sh` and checks that it printed exactly `expected`.
fn check_script(m: &mut Machine, name: &str, script: &str, expected: &str) {
    let path = format!("/tmp/{name}");
    write_file(m, &path, script);
    let out = run(m, &format!("sh {path}"));
    let got: Vec<&str> = out.lines().collect();
    let want: Vec<&str> = expected.lines().collect();
    assert_eq!(
        got, want,
        "{name}: output differs\n--- script ---\n{script}\n--- got ---\n{out}"
    );
}

#[test]
fn shell_language() {
    let Some(mut m) = boot("sh-language") else {
        return;
    };
    check_script(
        &mut m,
        "words.sh",
        r#"echo 'single $x' "double $HOME" back\ slash "a\"b" 'it''s'
x=hello; echo "$x world" ${x}s "${x}" '${x}'
echo ${unset:-default} ${x:+alt} ${#x} ${unset-} end
path=/a/b/c.tar.gz; echo ${path##*/} ${path%.*} ${path#/*/} ${path%%.*}
set -- one 'two three' four
echo $# "$1" "$2"
for a in "$@"; do echo "[$a]"; done
for a in $*; do echo "<$a>"; done
shift; echo "$*"
echo $((1 + 2 * 3)) $(( (1+2) * 3 )) $((7 % 3)) $((1 << 4)) $((3 > 2 && 1))
n=5; n=$((n - 1)); : $((n += 10)); echo $n
echo $(echo nested $(echo deep)) `echo back` "$(echo "quoted  spaces")"
echo a#b '#tmpfs' # a comment
echo "multi
line"
echo tab\
continued
"#,
        "single $x double / back slash a\"b its\n\
         hello world hellos hello ${x}\n\
         default alt 5 end\n\
         c.tar.gz /a/b/c.tar b/c.tar.gz /a/b/c\n\
         3 one two three\n\
         [one]\n[two three]\n[four]\n\
         <one>\n<two>\n<three>\n<four>\n\
         two three four\n\
         7 9 1 16 1\n\
         14\n\
         nested deep back quoted  spaces\n\
         a#b #tmpfs\n\
         multi\nline\n\
         tabcontinued\n",
    );
    check_script(
        &mut m,
        "control.sh",
        r#"if false; then echo no; elif true; then echo elif; else echo else; fi
if false; then echo no; else echo else; fi
i=0; while [ $i -lt 3 ]; do i=$((i+1)); echo w$i; done
until [ $i -eq 0 ]; do i=$((i-1)); done; echo until$i
for i in 1 2 3 4 5; do
    if [ $i = 2 ]; then continue; fi
    if [ $i = 4 ]; then break; fi
    echo f$i
done
for i in a b; do for j in 1 2; do if [ $j = 2 ]; then continue 2; fi; echo $i$j; done; done
case hello.txt in *.rs) echo rust;; *.txt|*.md) echo text;; *) echo other;; esac
case x in (y) echo y;; esac; echo case-none $?
case "a b" in "a b") echo quoted-case;; esac
case '*' in \*) echo star;; esac
true && echo and1; false && echo and2; false || echo or1; true || echo or2
! false && echo bang
! true; echo not $?
f() { local v=inner; echo "f $1 $v $#"; return 3; }
v=outer; f arg; echo "ret $? $v"
g() { for i in a b; do return 7; done; echo never; }; g; echo g$?
h() {
    echo "in h: $*"
}
h x y
echo one; echo two | cat; { echo brace; echo group; } | grep -c .
(cd /bin; echo sub-$PWD); echo $PWD
echo pipe | { read line; echo "got $line"; }
x=1; { x=2; }; echo brace-x$x; (x=3); echo sub-x$x
"#,
        "elif\nelse\nw1\nw2\nw3\nuntil0\nf1\nf3\na1\nb1\ntext\ncase-none 0\nquoted-case\nstar\n\
         and1\nor1\nbang\nnot 1\nf arg inner 1\nret 3 outer\ng7\nin h: x y\n\
         one\ntwo\n2\nsub-/bin\n/\ngot pipe\nbrace-x2\nsub-x2\n",
    );
    run(
        &mut m,
        "mkdir -p /tmp/g; echo > /tmp/g/a.txt; echo > /tmp/g/b.txt; echo > /tmp/g/c.rs",
    );
    check_script(
        &mut m,
        "redirect.sh",
        "cd /tmp\n\
         echo out > r1; echo app >> r1; cat < r1\n\
         echo err 2> r2 1>&2; cat r2\n\
         ls /nonexistent 2> r3; grep -c 'does not exist' r3\n\
         { echo both; ls /nonexistent; } > r4 2>&1; cat r4\n\
         exec 3> r5; echo via3 >&3; exec 3>&-; cat r5\n\
         read first <> r1; echo rw $first\n\
         x=expanded\n\
         cat <<EOF\n\
         plain $x $(echo cmd) \\$x\n\
         EOF\n\
         cat <<'EOF'\n\
         quoted $x\n\
         EOF\n\
         cat <<-EOF\n\
         \ttabs $x\n\
         \tEOF\n\
         while read a b; do echo \"$b-$a\"; done <<EOF\n\
         1 one\n\
         2 two\n\
         EOF\n\
         echo g/*.txt; echo g/?.rs; echo g/[ab].*; echo g/*.zip; echo 'g/*'\n\
         echo /tmp/g/*.rs\n\
         > empty; wc -c < empty\n",
        "out\napp\nerr\n1\nboth\nls: /nonexistent: file does not exist\nvia3\nrw out\n\
         plain expanded cmd $x\nquoted $x\ntabs expanded\none-1\ntwo-2\n\
         g/a.txt g/b.txt\ng/c.rs\ng/a.txt g/b.txt\ng/*.zip\ng/*\n/tmp/g/c.rs\n       0\n",
    );
    check_script(
        &mut m,
        "builtins.sh",
        r#"read a b <<EOF
first second third
EOF
echo "$a|$b"
IFS=: read x y <<EOF
p:q
EOF
echo "$x,$y"
printf '%s-%d|%5s|%-3s|%x\n' str 42 r l 255
printf '%s\n' a b
test -f /bin/sh && [ -d /bin ] && [ ! -e /nope ] && [ 3 -lt 10 ] && echo tests
eval 'echo evaled $((2+2))'
echo 'echo sourced $1; dotvar=set' > /tmp/src.sh; . /tmp/src.sh arg; echo $dotvar
export EXP=1; sh -c 'echo child $EXP'
unset EXP; sh -c 'echo child2 ${EXP:-none}'
LOCAL=temp sh -c 'echo prefix $LOCAL'; echo after ${LOCAL:-unset}
sh -c 'exit 7'; echo code $?
sh -c 'set -e; false; echo not reached'; echo after-e $?
sh -c 'set -e; if false; then :; fi; false || true; echo survived'
sh -c 'set -x; echo traced' 2>&1
sh -c 'echo $0 $1 $2' name p1 p2
true; echo $?; false; echo $?
sleep 0.1 & pid=$!; wait $pid; echo waited $?
sh -c 'exit 3' & wait $!; echo bg-status $?
[ "$$" -gt 1 ] && echo pid-ok
sh -c "trap 'echo bye' EXIT; echo hi"
sh -c 'f() { echo in-f; }; f; unset -f f; f' 2>/dev/null; echo unset-f $?
set -- a b c; shift 2; echo "$@"
cd /dev; echo $PWD; cd; echo $PWD
exec echo replaced
echo never
"#,
        "first|second third\np,q\nstr-42|    r|l  |ff\na\nb\ntests\nevaled 4\nsourced arg\nset\n\
         child 1\nchild2 none\nprefix temp\nafter unset\ncode 7\nafter-e 1\nsurvived\n\
         + echo traced\ntraced\nname p1 p2\n0\n1\nwaited 0\nbg-status 3\npid-ok\nhi\nbye\n\
         in-f\nunset-f 127\nc\n/dev\n/\nreplaced\n",
    );
}

#[test]
fn shell_scripts_and_errors() {
    let Some(mut m) = boot("sh-scripts") else {
        return;
    };
    // `sh FILE args`, `#!/bin/sh` executables, `sh -c`.
    write_file(
        &mut m,
        "/tmp/greet",
        "#!/bin/sh\n# a comment\necho \"hello $1 from $0, $# args\"\n",
    );
    let out = run(&mut m, "sh /tmp/greet world x");
    assert_eq!(out.trim(), "hello world from /tmp/greet, 2 args");
    let out = run(&mut m, "/tmp/greet; echo $?");
    assert_eq!(out, "sh: /tmp/greet: permission denied\n126\n");
    run(&mut m, "chmod +x /tmp/greet");
    let out = run(&mut m, "/tmp/greet you; echo status $?");
    assert_eq!(out.trim(), "hello you from /tmp/greet, 1 args\nstatus 0");
    let out = run(&mut m, "cd /tmp; PATH=/bin:/tmp; greet path; cd /");
    assert_eq!(out.trim(), "hello path from /tmp/greet, 1 args");
    let out = run(&mut m, "sh -c 'echo $1 $2' zero one two");
    assert_eq!(out.trim(), "one two");
    // Errors name the script and the line.
    write_file(
        &mut m,
        "/tmp/fsvm",
        "echo start\n\nno-such-command -k x\necho continued $?\ncat /nope\n",
    );
    let out = run(&mut m, "sh /tmp/fsvm; echo exit $?");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "start",
            "fsvm:3: no-such-command: file does not exist",
            "continued 127",
            "cat: /nope: file does not exist",
            "exit 1"
        ],
        "{out}"
    );
    // A syntax error: the line, a non-zero exit, and nothing after it runs; never a hang.
    write_file(
        &mut m,
        "/tmp/bad1",
        "echo before\nif true; then\n  echo x\nfi fi\necho after\n",
    );
    let out = run(&mut m, "sh /tmp/bad1; echo exit $?");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "before",
            "bad1:4: syntax error: unexpected \"fi\"",
            "exit 2"
        ],
        "{out}"
    );
    write_file(
        &mut m,
        "/tmp/bad2",
        "echo before\nwhile true; do\n  echo x\n",
    );
    let out = run(&mut m, "sh /tmp/bad2; echo exit $?");
    assert!(
        out.contains("bad2:4: syntax error: unexpected end of file") && out.contains("exit 2"),
        "{out}"
    );
    assert!(!out.contains("\nx\n"), "{out}");
    let out = run(&mut m, "sh -c 'echo \"unterminated'; echo exit $?");
    assert!(
        out.contains("syntax error") && out.contains("exit 2"),
        "{out}"
    );
    let out = run(&mut m, "sh -c 'x=${y:?is required}; echo no'; echo exit $?");
    assert!(
        out.contains("sh:1: y: is required") && out.contains("exit 1"),
        "{out}"
    );
    assert!(!out.contains("no\n"), "{out}");
    let out = run(&mut m, "sh /tmp/missing-script; echo exit $?");
    assert!(
        out.contains("/tmp/missing-script: file does not exist") && out.contains("exit 127"),
        "{out}"
    );
    // Interactive errors say `sh:`; the shell carries on.
    let out = run(&mut m, "frobnicate; echo $?");
    assert_eq!(out.trim(), "sh: frobnicate: file does not exist\n127");
    let out = run(&mut m, "echo a; fi");
    assert!(out.contains("sh: syntax error: unexpected \"fi\""), "{out}");
    // Paths with `#` work quoted.
    let out = run(&mut m, "cd '#tmpfs'; echo made > f; cat f; ls; cd /");
    assert_eq!(out.trim(), "made\nf");
}

#[test]
fn shell_trap_runs_while_blocked_in_wait() {
    let Some(mut m) = boot("sh-trap") else {
        return;
    };
    // The fsvm pattern: a background job, a TERM trap that cleans up, `wait`.
    write_file(
        &mut m,
        "/tmp/svc",
        r#"cd '#tmpfs'
echo state > marker
sleep 100 &
child=$!
echo started $child
cleanup() {
    echo trapped TERM
    kill $child
    wait $child
    echo child ended $?
    rm marker
    exit 0
}
trap cleanup TERM INT
trap 'echo exit trap' EXIT
wait
echo not reached
"#,
    );
    let out = run(&mut m, "chmod +x /tmp/svc; /tmp/svc > /tmp/svc.log &");
    assert_eq!(out.trim(), "");
    let deadline = Instant::now() + Duration::from_secs(30);
    let ps = loop {
        let ps = run(&mut m, "ps");
        if ps.lines().any(|l| l.contains(" sleep ")) {
            break ps;
        }
        assert!(Instant::now() < deadline, "sleep never started:\n{ps}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let svc = ps
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("svc"))
        .unwrap_or_else(|| panic!("the script's process is named after it:\n{ps}"));
    let pid = svc.split_whitespace().next().unwrap().to_string();
    assert!(
        svc.ends_with(" WAITING 2") || svc.contains(" WAITING "),
        "{svc}"
    );
    let sleep_line = ps.lines().find(|l| l.contains(" sleep ")).unwrap();
    assert!(
        sleep_line.ends_with(&format!(" {pid}")),
        "sleep's parent is the script: {ps}"
    );
    run(&mut m, &format!("kill {pid}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ps = run(&mut m, "ps");
        if !ps.contains(" sleep ") && !ps.contains(" svc ") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the script did not clean up:\n{ps}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = run(&mut m, "cat /tmp/svc.log");
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 4, "{log}");
    assert!(lines[0].starts_with("started "), "{log}");
    assert_eq!(
        lines[1..],
        ["trapped TERM", "child ended 143", "exit trap"],
        "{log}"
    );
    // An untrapped TERM still ends a script, after its EXIT trap.
    let out = run(
        &mut m,
        "sh -c 'trap \"echo cleanup\" EXIT; kill $$; sleep 5; echo not reached'; echo $?",
    );
    assert_eq!(out.trim(), "cleanup\n143");
    // INT and HUP traps, ignored signals, traps listed, `$?` kept across a trap.
    let out = run(
        &mut m,
        "sh -c 'trap \"echo got INT\" INT; trap \"echo got HUP\" 1; trap \"\" TERM; \
         kill -INT $$; kill -s HUP $$; kill $$; false; echo after $?; trap'",
    );
    assert_eq!(
        out,
        "got INT\ngot HUP\nafter 1\ntrap -- 'echo got HUP' HUP\ntrap -- 'echo got INT' INT\n\
         trap -- '' TERM\n"
    );
    // `kill` of a bad pid, and an unknown signal, say so.
    let out = run(&mut m, "kill 99999; echo $?; kill -BOGUS 1; echo $?");
    assert!(
        out.contains("kill: 99999:") && out.contains("unknown signal"),
        "{out}"
    );
}

/// The shape of DESIGN.md's fsvm, with stand-ins for the VM (a job reading its console from a
/// pipe) and its 9P server (ramfs): started in the background, killed, it leaves nothing
/// behind: no process, no mount, no `/srv` entry, no binding.
#[test]
fn shell_fsvm_shaped_script_cleans_up() {
    let Some(mut m) = boot("sh-fsvm") else {
        return;
    };
    write_file(
        &mut m,
        "/tmp/fsvm-sim",
        r#"#!/bin/sh
mnt=$1
cd '#tmpfs'
mkdir p
bind '#pipe' p
echo 'console=hvc0 fsvm.part=1' > cmdline
{ read cmd; echo "vm got $cmd"; } < p/data1 > /tmp/vm.log &
vm=$!
ramfs -s fsvmsim
mount -c /srv/fsvmsim $mnt
echo hello > $mnt/file
stop() {
    sync $mnt
    unmount $mnt
    rm /srv/fsvmsim
    echo SHUTDOWN > p/data
    wait $vm
    echo stopped $?
    exit 0
}
trap stop TERM INT
wait
"#,
    );
    run(&mut m, "chmod +x /tmp/fsvm-sim");
    let before_ns = run(&mut m, "ns | grep -c pipe");
    assert_eq!(before_ns.trim(), "0");
    run(&mut m, "/tmp/fsvm-sim /mnt > /tmp/fsvm.log &");
    let deadline = Instant::now() + Duration::from_secs(30);
    while run(&mut m, "ls /mnt") != "file\n" {
        assert!(Instant::now() < deadline, "the mount never appeared");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(run(&mut m, "cat /mnt/file"), "hello\n");
    let ps = run(&mut m, "ps");
    let script = ps
        .lines()
        .find(|l| l.split(' ').nth(1) == Some("fsvm-sim") && l.ends_with(" 2"))
        .unwrap_or_else(|| panic!("{ps}"));
    let pid = script.split(' ').next().unwrap().to_string();
    run(&mut m, &format!("kill {pid}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ps = run(&mut m, "ps");
        if !ps.contains("fsvm-sim") && !ps.contains("ramfs") {
            break;
        }
        assert!(Instant::now() < deadline, "left behind:\n{ps}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        run(&mut m, "cat /tmp/fsvm.log /tmp/vm.log"),
        "stopped 0\nvm got SHUTDOWN\n"
    );
    assert_eq!(run(&mut m, "ls /mnt; ls /srv"), "");
    assert_eq!(run(&mut m, "ns | grep -c pipe").trim(), "0");
}

#[test]
fn shell_interactive_console() {
    let Some(mut m) = boot("sh-console") else {
        return;
    };
    // ^C interrupts the foreground job, not the shell.
    start_foreground(&mut m, "sleep 100");
    let start = Instant::now();
    m.send(b"\x03").unwrap();
    let out = m
        .wait_prompt(Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("^C did not bring the prompt back: {e}"));
    assert!(start.elapsed() < Duration::from_secs(20), "{out}");
    let out = run(&mut m, "echo status $?");
    assert_eq!(out.trim(), "status 130");
    // A background job is not in the console's note group: ^C leaves it alone.
    run(&mut m, "sleep 100 &");
    start_foreground(&mut m, "sleep 100");
    m.send(b"\x03").unwrap();
    m.wait_prompt(TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    let ps = run(&mut m, "ps");
    assert_eq!(ps.matches(" sleep ").count(), 1, "{ps}");
    // ^C stops a loop the shell itself runs, and a loop of programs.
    for line in ["while true; do :; done", "while true; do sleep 1; done"] {
        start_foreground(&mut m, line);
        m.send(b"\x03").unwrap();
        m.wait_prompt(Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("^C did not stop {line:?}: {e}"));
        let out = run(&mut m, "echo status $?");
        assert_eq!(out.trim(), "status 130", "{line}");
    }
    // Runaway recursion is an error, not the end of the shell.
    let out = run(&mut m, "f() { f; }; f; echo not reached");
    assert!(out.contains("sh: f: functions nested too deeply"), "{out}");
    assert!(!out.contains("not reached"), "{out}");
    // A writer whose reader has gone ends quietly.
    let out = run(
        &mut m,
        "cat /dev/random | head -1 > /dev/null; echo done $?",
    );
    assert_eq!(out, "done 0\n");
    // ^C at the prompt abandons the line.
    m.send(b"echo abandoned\x03").unwrap();
    m.wait_prompt(TIMEOUT).unwrap();
    let out = run(&mut m, "echo next");
    assert_eq!(out.trim(), "next");
    // Line editing: backspace, ^U, cursor keys; history with up and down.
    m.send(b"echo helo\x08lo\r").unwrap();
    let out = m.wait_prompt(TIMEOUT).unwrap();
    assert!(out.ends_with("hello\n"), "{out:?}");
    m.send(b"garbage\x15echo clean\r").unwrap();
    let out = m.wait_prompt(TIMEOUT).unwrap();
    assert!(out.ends_with("\nclean\n"), "{out:?}");
    m.send(b"echo wrld\x1b[D\x1b[D\x1b[Do\r").unwrap();
    let out = m.wait_prompt(TIMEOUT).unwrap();
    assert!(out.ends_with("\nworld\n"), "{out:?}");
    m.send(b"\x1b[A\x1b[A\r").unwrap();
    let out = m.wait_prompt(TIMEOUT).unwrap();
    assert!(
        out.ends_with("\nclean\n"),
        "up twice recalls the line before last: {out:?}"
    );
    m.send(b"\x1b[A\x1b[A\x1b[B\r").unwrap();
    let out = m.wait_prompt(TIMEOUT).unwrap();
    assert!(out.ends_with("\nclean\n"), "{out:?}");
    // Continuation lines, and the prompt follows `cd`.
    m.send(b"for i in 1 2\rdo echo n$i\rdone\r").unwrap();
    let out = m.wait_prompt(TIMEOUT).unwrap();
    assert!(out.contains("> ") && out.ends_with("n1\nn2\n"), "{out:?}");
    m.send_line("cd /tmp").unwrap();
    let before = m.wait_for("/tmp $ ", TIMEOUT).unwrap();
    assert!(!before.contains("rror"), "{before}");
    run(&mut m, "cd /");
    // ps: `pid name state ppid`, one process a line, sorted, without ps itself.
    let ps = run(&mut m, "ps");
    let mut last = 0;
    for line in ps.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        assert_eq!(f.len(), 4, "{line:?} in\n{ps}");
        let pid: u64 = f[0].parse().unwrap();
        assert!(pid > last, "sorted by pid:\n{ps}");
        last = pid;
        assert!(f[2].chars().all(|c| c.is_ascii_uppercase()), "{line}");
        f[3].parse::<u64>().unwrap();
    }
    assert!(ps.starts_with("1 init "), "{ps}");
    assert!(ps.contains(" sh WAITING 1\n"), "{ps}");
    assert!(!ps.contains(" ps "), "{ps}");
}

#[test]
fn commands() {
    let Some(mut m) = boot("sh-commands") else {
        return;
    };
    let m = &mut m;
    check(
        m,
        "mkdir /tmp/t; cd /tmp/t; echo hello > a; echo world >> a; cat a",
        "hello\nworld\n",
    );
    check(
        m,
        "mkdir -p x/y/z && ls -d x x/y x/y/z; ls",
        "x\nx/y\nx/y/z\na\nx\n",
    );
    check(
        m,
        "cp a b; cp a b x; ls x; cmp=$(cat x/b); echo $cmp",
        "a\nb\ny\nhello world\n",
    );
    check(m, "mv b c; ls; mv c x/y; ls x/y", "a\nc\nx\nc\nz\n");
    check(m, "rm a; ls; rm -r x; ls; echo $?", "x\n0\n");
    check(
        m,
        "rm nothing; echo $?; rm -f nothing; echo $?",
        "rm: nothing: file does not exist\n1\n0\n",
    );
    check(
        m,
        "printf 'one two\\nthree\\n' > w; wc w; wc -l < w",
        "       2       3      14 w\n       2\n",
    );
    check(
        m,
        "printf 'alpha\\nbeta\\ngamma\\n' > g; grep a g; grep -c a g",
        "alpha\nbeta\ngamma\n3\n",
    );
    check(m, "grep -n '^b' g; grep -v a g; echo $?", "2:beta\n1\n");
    check(
        m,
        "grep -E 'l(p|m)' g; grep -F 'a.' g; echo $?",
        "alpha\n1\n",
    );
    check(
        m,
        "grep -i ALPHA g; grep -q zeta g || echo none",
        "alpha\nnone\n",
    );
    check(
        m,
        "grep -l alpha g w; grep x nofile; echo $?",
        "g\ngrep: nofile: file does not exist\n1\n",
    );
    check(
        m,
        "printf '1\\n2\\n3\\n4\\n' > n; head -2 n; tail -n 1 n; tail -3 n",
        "1\n2\n4\n2\n3\n4\n",
    );
    check(
        m,
        "printf abc > s; sha256sum s",
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  s\n",
    );
    check(
        m,
        "test -f s && test ! -d s && echo file; test 1 -gt 2; echo $?",
        "file\n1\n",
    );
    // The program and the builtin answer alike, -t included (the console is a terminal, a
    // file is not).
    check(
        m,
        "/bin/test -t 1 && echo tty; /bin/test -t 1 > notatty; echo $?; test -t 1 && echo tty",
        "tty\n1\ntty\n",
    );
    let out = run(m, "ls -l s");
    assert!(
        out.starts_with("-rw-rw-r-- ") && out.contains("          3 ") && out.ends_with(" s\n"),
        "{out:?}"
    );
    check(m, "cd /; rm -r /tmp/t", "");
    // Namespaces: bind, mount through /srv, unmount, ns.
    check(
        m,
        "mkdir /tmp/m; bind /bin /tmp/m; ls /tmp/m | grep -c '^sh$'; unmount /tmp/m; ls /tmp/m",
        "1\n",
    );
    check(
        m,
        "bind -a '#pipe' /tmp/m; ls /tmp/m; ns | grep -c pipe; unmount /tmp/m",
        "data\ndata1\n1\n",
    );
    check(
        m,
        "srv /dev/null nul; ls /srv; srv -r nul; ls /srv",
        "nul\n",
    );
    check(
        m,
        "mkdir /tmp/r; ramfs -s rfs; mount -c /srv/rfs /tmp/r; echo served > /tmp/r/f; \
         cat /tmp/r/f; ls /tmp/r; unmount /tmp/r; ls /tmp/r; rm /srv/rfs",
        "served\nf\n",
    );
    let union = format!("{}\nmine\nx\n", bins(m) + 1);
    check(
        m,
        "mkdir /tmp/u; echo mine > /tmp/u/x; bind -b /bin /tmp/u; ls /tmp/u | grep -c .; \
         cat /tmp/u/x; unmount /bin /tmp/u; ls /tmp/u",
        &union,
    );
    // Information commands.
    let out = run(
        m,
        "date; date -n; uptime; free; dmesg | grep -c 'boot archive'",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].contains(" UTC 20"), "{out}");
    assert!(lines[1].parse::<u64>().unwrap() > 1_600_000_000, "{out}");
    assert!(lines[2].starts_with("up "), "{out}");
    assert!(
        lines[3].contains("total") && lines[4].starts_with("memory"),
        "{out}"
    );
    assert_eq!(*lines.last().unwrap(), "1", "{out}");
    let cpu = run(m, "cpu");
    assert!(cpu.contains("virtualization"), "{cpu}");
    let pci = run(m, "pci");
    assert!(pci.contains("host bridge"), "{pci}");
    run(m, "sleep 0.1");
    // Wrong arguments: a usage message and a failure; failures name the file.
    for cmd in [
        "ls -z",
        "cat -z",
        "mkdir",
        "rm",
        "mv a",
        "cp a",
        "wc -z",
        "grep",
        "sleep",
        "sleep x",
        "ps x",
        "kill",
        "bind a",
        "mount a",
        "unmount",
        "srv a",
        "ns a b",
        "date x",
        "uptime x",
        "free x",
        "dmesg x",
        "sha256sum -z",
        "head -n x",
        "tail -n",
        "chmod",
        "cpu x",
        "pci x",
        "poweroff x",
        "reboot x",
    ] {
        let out = run(m, &format!("{cmd}; echo status $?"));
        assert!(out.contains("usage:"), "{cmd}: {out}");
        assert!(!out.contains("status 0"), "{cmd}: {out}");
    }
    for (cmd, file) in [
        ("cat /nope", "/nope"),
        ("ls /nope", "/nope"),
        ("wc /nope", "/nope"),
        ("sha256sum /nope", "/nope"),
        ("head /nope", "/nope"),
        ("mount /nope /tmp", "/nope"),
        ("bind /nope /tmp", "/nope"),
        ("mkdir /nope/x", "/nope/x"),
        ("ns 99999", "/proc/99999/ns"),
    ] {
        let out = run(m, &format!("{cmd}; echo status $?"));
        assert!(
            out.contains(file) && out.contains("does not exist"),
            "{cmd}: {out}"
        );
        assert!(!out.contains("status 0"), "{cmd}: {out}");
    }
    // Several sources need a directory to go into.
    for cmd in [
        "cp /bin/ls /bin/cat /tmp/nodir",
        "mv /tmp/a /tmp/b /tmp/nodir",
    ] {
        let out = run(m, &format!("{cmd}; echo status $?"));
        assert!(
            out.contains("/tmp/nodir: not a directory") && !out.contains("status 0"),
            "{cmd}: {out}"
        );
    }
}

/// How many programs `/bin` has.
fn bins(m: &mut Machine) -> usize {
    run(m, "ls /bin").lines().count()
}

/// Runs `line` and checks all it printed.
fn check(m: &mut Machine, line: &str, want: &str) {
    let out = run(m, line);
    assert_eq!(out, want, "{line}");
}
