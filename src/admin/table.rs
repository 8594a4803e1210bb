//! `rendezvous admin status` for a person: the `GET /admin/status` JSON as short tables (the
//! JSON itself with `--json`).

use std::fmt::Write;

use serde_json::Value;

/// A JSON value as a table cell.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

/// The status as text: the server, the store, who is being limited, federation.
pub fn status_table(status: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} (version {}): {} users, {} topics, {} open streams",
        text(&status["server_name"]),
        text(&status["version"]),
        text(&status["users"]),
        text(&status["topics"]),
        text(&status["connections"]),
    );
    let storage = &status["storage"];
    let _ = writeln!(
        out,
        "storage: {}, {} free{}",
        text(&storage["state"]),
        storage["free_bytes"]
            .as_u64()
            .map_or("?".to_owned(), |b| format!("{} MiB", b / (1024 * 1024))),
        match storage["last_error"].as_str() {
            Some(e) => format!(", first error: {e}"),
            None => String::new(),
        }
    );
    limited(&mut out, status);
    federation(&mut out, &status["federation"]);
    directory(&mut out, &status["directory"]);
    out
}

/// The directory's size and the peers' directories witnessed (`directory.md` §5).
fn directory(out: &mut String, directory: &Value) {
    if !directory.is_object() {
        return;
    }
    let _ = writeln!(out, "directory: {} entries", text(&directory["size"]));
    let rows: Vec<[String; 4]> = directory["peers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| ["peer", "size", "last_cosigned", "evidence"].map(|k| text(&p[k])))
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(out, "directories witnessed:");
    table(out, ["peer", "size", "last cosigned", "evidence"], &rows);
}

/// Who was refused in the window.
fn limited(out: &mut String, status: &Value) {
    let rows: Vec<[String; 6]> = status["limits"]["limited"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            [
                "class",
                "scope",
                "key",
                "refused",
                "last",
                "retry_after_secs",
            ]
            .map(|k| text(&r[k]))
        })
        .collect();
    let window = text(&status["limits"]["window_secs"]);
    if rows.is_empty() {
        let _ = writeln!(out, "limited in the last {window} s: nobody");
        return;
    }
    let _ = writeln!(out, "limited in the last {window} s:");
    table(
        out,
        ["class", "scope", "key", "refused", "last", "retry-in"],
        &rows,
    );
}

/// Peers' queues and stopped mirrors.
fn federation(out: &mut String, federation: &Value) {
    if federation["enabled"] != Value::Bool(true) {
        return;
    }
    let rows: Vec<[String; 4]> = federation["peers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| ["server", "queued", "failed_attempts", "next_attempt_in_ms"].map(|k| text(&p[k])))
        .collect();
    let _ = writeln!(out, "federation peers:");
    table(out, ["server", "queued", "failed", "next-in-ms"], &rows);
    for m in federation["stopped_mirrors"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let _ = writeln!(
            out,
            "stopped mirror {} (host {}): {}",
            text(&m["topic"]),
            text(&m["host"]),
            text(&m["reason"])
        );
    }
}

/// Left-aligned columns, two spaces apart, indented by two.
fn table<const N: usize>(out: &mut String, head: [&str; N], rows: &[[String; N]]) {
    let mut widths = head.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let _ = writeln!(out, "  {}", line(head.to_vec()));
    for row in rows {
        let _ = writeln!(out, "  {}", line(row.iter().map(String::as_str).collect()));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn the_table_names_who_is_limited_and_the_store() {
        let status = json!({
            "server_name": "a.example", "version": "0.1.0", "users": 3, "topics": 2,
            "connections": 1,
            "storage": {"state": "low_space", "free_bytes": 200u64 * 1024 * 1024, "last_error": null},
            "limits": {"window_secs": 600, "limited": [
                {"class": "login_ip", "scope": "ip", "key": "203.0.113.7", "refused": 1843,
                 "first": 1, "last": 2, "retry_after_secs": 12},
                {"class": "topics_per_user", "scope": "quota", "key": "@eve:a.example",
                 "refused": 3, "first": 1, "last": 2, "retry_after_secs": 0}]},
            "federation": {"enabled": false},
        });
        let text = super::status_table(&status);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "a.example (version 0.1.0): 3 users, 2 topics, 1 open streams"
        );
        assert_eq!(lines[1], "storage: low_space, 200 MiB free");
        assert_eq!(lines[2], "limited in the last 600 s:");
        assert_eq!(
            lines[3],
            "  class            scope  key             refused  last  retry-in"
        );
        assert_eq!(
            lines[4],
            "  login_ip         ip     203.0.113.7     1843     2     12"
        );
        assert_eq!(
            lines[5],
            "  topics_per_user  quota  @eve:a.example  3        2     0"
        );
        assert_eq!(lines.len(), 6);
    }

    #[test]
    fn the_table_shows_the_directories_witnessed_and_the_evidence() {
        let status = json!({
            "server_name": "a.example", "version": "0.1.0", "users": 1, "topics": 0,
            "connections": 0,
            "storage": {"state": "ok", "free_bytes": 0, "last_error": null},
            "limits": {"window_secs": 600, "limited": []},
            "federation": {"enabled": true, "peers": [], "stopped_mirrors": []},
            "directory": {"size": 4, "peers": [
                {"peer": "b.example", "size": 7, "last_cosigned": 1700000000, "evidence": "split_view"},
                {"peer": "c.example", "size": 2, "last_cosigned": 1700000001, "evidence": null}]},
        });
        let text = super::status_table(&status);
        let lines: Vec<&str> = text.lines().collect();
        let at = lines
            .iter()
            .position(|l| *l == "directory: 4 entries")
            .unwrap();
        assert_eq!(lines[at + 1], "directories witnessed:");
        assert_eq!(lines[at + 2], "  peer       size  last cosigned  evidence");
        assert_eq!(
            lines[at + 3],
            "  b.example  7     1700000000     split_view"
        );
        assert_eq!(lines[at + 4], "  c.example  2     1700000001     -");
    }
}
