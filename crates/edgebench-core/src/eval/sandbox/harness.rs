//! The harness that runs generated code and its tests, and proves that the tests ran to the end:
//! it reads a random proof from its standard input before the generated code runs (the proof is
//! nowhere in the program's text), and prints it only after the last test returns, so a program
//! that exits early (`sys.exit(0)`, `os._exit(0)`) cannot pass. Limit hits that Python reports
//! as exceptions (memory, file size, processes) end with exit codes of their own.

use rand::RngCore;

/// Exit code of a program that ran out of memory (`MemoryError`).
pub const EXIT_MEMORY: i32 = 120;
/// Exit code of a program that wrote past the file-size limit (`EFBIG`).
pub const EXIT_FILE_SIZE: i32 = 121;
/// Exit code of a program refused a new process or thread (`EAGAIN` from fork or a thread).
pub const EXIT_PROCESSES: i32 = 122;

/// What the harness prints, followed by the proof, once the tests have returned.
const MARK: &str = "edgebench-tests-completed ";

/// A fresh proof: 128 random bits in hex.
pub fn new_proof() -> String {
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The line the harness prints for `proof`.
pub fn proof_line(proof: &str) -> String {
    format!("{MARK}{proof}")
}

/// A Python string literal holding `s` (a JSON string is one, escapes included).
fn py_literal(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// The program that runs `code`, then `tests`, in one fresh module namespace, and prints the
/// proof it read from standard input when both have run to the end.
pub fn program(code: &str, tests: &str) -> String {
    format!(
        r#"def _edgebench_harness(code, tests):
    import errno, os, sys
    proof = os.read(0, 256).strip()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    namespace = {{"__name__": "__main__"}}
    try:
        exec(compile(code, "program.py", "exec"), namespace)
        exec(compile(tests, "tests.py", "exec"), namespace)
    except MemoryError:
        os.write(2, b"MemoryError: the sandbox's memory limit\n")
        os._exit({EXIT_MEMORY})
    except OSError as e:
        if e.errno == errno.EFBIG:
            os.write(2, b"OSError: file too large: the sandbox's file-size limit\n")
            os._exit({EXIT_FILE_SIZE})
        if e.errno == errno.EAGAIN:
            os.write(2, b"OSError: no more processes: the sandbox's process limit\n")
            os._exit({EXIT_PROCESSES})
        raise
    sys.stdout.flush()
    os.write(1, b"\n{MARK}" + proof + b"\n")


_edgebench_harness({code}, {tests})
"#,
        code = py_literal(code),
        tests = py_literal(tests),
    )
}

/// True when the program's standard output ends with the proof's line (nothing the program
/// prints after it, such as an exit handler, can hide an early exit).
pub fn proved(stdout_tail: &str, proof: &str) -> bool {
    let line = proof_line(proof);
    stdout_tail.lines().any(|l| l.trim_end() == line)
}

/// Generated code that calls network, process, exit, signal or file-system functions outside
/// its folder, or reaches for the interpreter's internals: a static list of patterns, for the
/// compliance evidence (the sandbox contains all of them either way, and no static list is
/// complete: this counts suspicious code, not proven escape attempts).
pub fn suspicious_code(code: &str) -> bool {
    const PATTERNS: &[&str] = &[
        "import socket",
        "from socket",
        "urllib",
        "http.client",
        "requests.",
        "subprocess",
        "os.system",
        "os.popen",
        "os.fork",
        "os.exec",
        "os.spawn",
        "os.kill",
        "os.killpg",
        "os._exit",
        "sys.exit",
        "SystemExit",
        "signal.",
        "multiprocessing",
        "threading",
        "open('/",
        "open(\"/",
        "Path('/",
        "Path(\"/",
        "/proc",
        "/etc/",
        "/dev/",
        "/sys/",
        "os.open",
        "os.environ",
        "os.set",
        "os.chmod",
        "os.chown",
        "shutil.",
        "os.remove",
        "os.unlink",
        "os.rmdir",
        "os.rename",
        "ctypes",
        "__import__",
        "importlib",
        "sys._getframe",
        "inspect.",
        "exec(",
        "eval(",
    ];
    // A pattern counts where it starts a word (`literal_eval(` is not `eval(`, `pos.set` is
    // not `os.set`).
    let starts_word = |i: usize| {
        code[..i]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
    };
    PATTERNS.iter().any(|p| {
        let first_is_word = p.starts_with(|c: char| c.is_alphanumeric() || c == '_');
        code.match_indices(p)
            .any(|(i, _)| !first_is_word || starts_word(i))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_are_fresh_and_checked_as_whole_lines() {
        let (a, b) = (new_proof(), new_proof());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        let out = format!("some output\n\n{}\n", proof_line(&a));
        assert!(proved(&out, &a));
        assert!(!proved(&out, &b));
        assert!(!proved(&format!("{}x\n", proof_line(&a)), &a));
        assert!(!proved("", &a));
    }

    #[test]
    fn code_with_quotes_and_newlines_is_a_literal() {
        let p = program("s = \"a\\n'b'\"\nprint(s)\n", "assert s");
        assert!(p.contains(r#""s = \"a\\n'b'\"\nprint(s)\n""#), "{p}");
        assert!(!p.contains(&new_proof()));
    }

    #[test]
    fn suspicious_patterns() {
        for hostile in [
            "import socket\ns = socket.socket()",
            "print(open('/etc/passwd').read())",
            "import os\nos._exit(0)",
            "import sys\nsys.exit(0)",
            "raise SystemExit",
            "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)",
            "print(open('/proc/1/environ').read())",
            "open('marker', 'w').write('x') if __import__('os') else None",
            "import pathlib\nprint(pathlib.Path('/etc/hostname').read_text())",
        ] {
            assert!(suspicious_code(hostile), "{hostile}");
        }
        assert!(!suspicious_code("def f(x):\n    return sorted(x)\n"));
        assert!(!suspicious_code(
            "import ast\nv = ast.literal_eval(s)\npos.setdefault(1)"
        ));
        assert!(suspicious_code("v = eval(s)"));
        assert!(!suspicious_code(
            "from typing import List\n\ndef has_close(numbers: List[float]) -> bool:\n    return any(abs(a - b) < 1 for a in numbers for b in numbers)\n"
        ));
    }
}
