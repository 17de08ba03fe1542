//! The page: a small HTML writer that escapes every text it is given, with tables, figures and
//! pictures embedded as data URIs. No script, no external resource.

use std::fmt::Write as _;
use std::path::Path;

use base64::Engine as _;

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A number as the page shows it: 4 significant decimals, or `–` for none.
pub fn num(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => {
            if v != 0.0 && v.abs() < 1e-3 {
                format!("{v:.2e}")
            } else {
                format!("{v:.4}")
            }
        }
        Some(v) => format!("{v}"),
        None => "–".into(),
    }
}

/// A count with thin-space thousands separators.
pub fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push('\u{2009}');
        }
        out.push(c);
    }
    out
}

const STYLE: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:18px 32px}
header h1{margin:0;font-size:24px}
header p{margin:4px 0 0;color:#c9cfdb}
nav{padding:8px 32px;background:#e8ebf0;position:sticky;top:0}
nav a{margin-right:18px;color:#1d2330;text-decoration:none;font-weight:600}
main{padding:8px 32px 40px;max-width:1400px}
section{background:#fff;border-radius:6px;padding:8px 24px 20px;margin:20px 0;box-shadow:0 1px 3px rgba(0,0,0,.08)}
h2{border-bottom:2px solid #e8ebf0;padding-bottom:6px}
table{border-collapse:collapse;margin:10px 0;font-size:14px}
th,td{border:1px solid #dde1e8;padding:3px 8px;text-align:right;vertical-align:top}
th{background:#f0f2f5}
td.l,th.l{text-align:left}
td.code{font-family:ui-monospace,'DejaVu Sans Mono',monospace;font-size:12px;text-align:left;max-width:560px;word-break:break-all}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:12px 0}
.card{background:#f0f2f5;border-radius:6px;padding:8px 14px;min-width:130px}
.card b{display:block;font-size:22px}
.card span{font-size:13px;color:#4a5263}
figure{margin:12px 0;display:inline-block;vertical-align:top}
figcaption{font-size:13px;color:#4a5263;max-width:900px}
figure img{max-width:100%;border:1px solid #dde1e8}
.note{color:#6b3d00;background:#fff4e0;padding:6px 10px;border-radius:4px}
.swatch{display:inline-block;width:12px;height:12px;border:1px solid #888;margin-right:6px;vertical-align:-1px}
";

/// The page being written.
#[derive(Debug)]
pub struct Page {
    title: String,
    generator: &'static str,
    nav: Vec<(String, String)>,
    body: String,
    open: bool,
}

impl Page {
    pub fn new(title: &str, generator: &'static str) -> Page {
        Page {
            title: title.into(),
            generator,
            nav: vec![],
            body: String::new(),
            open: false,
        }
    }

    /// Starts a section (closing the one before), listed in the navigation bar.
    pub fn section(&mut self, id: &str, title: &str) {
        self.close();
        self.nav.push((id.into(), title.into()));
        let _ = write!(self.body, "<section id=\"{}\"><h2>{}</h2>", esc(id), esc(title));
        self.open = true;
    }

    fn close(&mut self) {
        if self.open {
            self.body.push_str("</section>\n");
            self.open = false;
        }
    }

    pub fn h3(&mut self, text: &str) {
        let _ = write!(self.body, "<h3>{}</h3>", esc(text));
    }

    pub fn p(&mut self, text: &str) {
        let _ = write!(self.body, "<p>{}</p>", esc(text));
    }

    /// A highlighted remark (a missing input, an untrusted value).
    pub fn note(&mut self, text: &str) {
        let _ = write!(self.body, "<p class=\"note\">{}</p>", esc(text));
    }

    /// Headline figures as cards: (value, what it is).
    pub fn cards(&mut self, cards: &[(String, String)]) {
        self.body.push_str("<div class=\"cards\">");
        for (v, what) in cards {
            let _ = write!(
                self.body,
                "<div class=\"card\"><b>{}</b><span>{}</span></div>",
                esc(v),
                esc(what)
            );
        }
        self.body.push_str("</div>");
    }

    /// A table of text cells; the first `left` columns are left-aligned.
    pub fn table(&mut self, head: &[&str], rows: &[Vec<String>], left: usize) {
        let cells: Vec<Vec<Cell>> = rows.iter().map(|r| r.iter().map(|s| Cell::text(s)).collect()).collect();
        self.table_cells(head, &cells, left);
    }

    /// A table whose cells may carry a background colour or raw markup.
    pub fn table_cells(&mut self, head: &[&str], rows: &[Vec<Cell>], left: usize) {
        self.body.push_str("<table><thead><tr>");
        for (i, h) in head.iter().enumerate() {
            let class = if i < left { " class=\"l\"" } else { "" };
            let _ = write!(self.body, "<th{class}>{}</th>", esc(h));
        }
        self.body.push_str("</tr></thead><tbody>");
        for r in rows {
            self.body.push_str("<tr>");
            for (i, c) in r.iter().enumerate() {
                let class = match (&c.class, i < left) {
                    (Some(k), _) => format!(" class=\"{k}\""),
                    (None, true) => " class=\"l\"".into(),
                    (None, false) => String::new(),
                };
                let style = c.background.map(|[r, g, b]| {
                    let ink = if 0.299 * r as f64 + 0.587 * g as f64 + 0.114 * b as f64 > 140.0 {
                        "#000"
                    } else {
                        "#fff"
                    };
                    format!(" style=\"background:rgb({r},{g},{b});color:{ink}\"")
                });
                let _ = write!(self.body, "<td{class}{}>{}</td>", style.unwrap_or_default(), c.html);
            }
            self.body.push_str("</tr>");
        }
        self.body.push_str("</tbody></table>");
    }

    /// An SVG chart (from [`crate::svg`]) with its caption; a chart that could not be drawn
    /// (nothing drawable in it) is noted, and the rest of the page still shows.
    pub fn svg(&mut self, svg: anyhow::Result<String>, caption: &str) {
        match svg {
            Ok(svg) => {
                let _ = write!(
                    self.body,
                    "<figure>{svg}<figcaption>{}</figcaption></figure>",
                    esc(caption)
                );
            }
            Err(e) => {
                log::warn!("{e:#}");
                self.note(&format!("Not drawn: {e:#}. ({caption})"));
            }
        }
    }

    /// A PNG embedded as a data URI; a picture that cannot be read is noted, not fatal (the
    /// rest of the page still says what the run did).
    pub fn png(&mut self, path: &Path, alt: &str, caption: &str) {
        match std::fs::read(path) {
            Ok(bytes) if bytes.starts_with(b"\x89PNG\r\n\x1a\n") => {
                let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
                let _ = write!(
                    self.body,
                    "<figure><img alt=\"{}\" src=\"data:image/png;base64,{b64}\"><figcaption>{}</figcaption></figure>",
                    esc(alt),
                    esc(caption)
                );
            }
            Ok(_) => self.missing_picture(format!("{} is not a PNG file; not shown.", path.display())),
            Err(e) => self.missing_picture(format!("{} could not be read ({e}); not shown.", path.display())),
        }
    }

    fn missing_picture(&mut self, why: String) {
        log::warn!("{why}");
        self.note(&why);
    }

    /// The whole document.
    pub fn finish(mut self) -> String {
        self.close();
        let mut nav = String::new();
        for (id, title) in &self.nav {
            let _ = write!(nav, "<a href=\"#{}\">{}</a>", esc(id), esc(title));
        }
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">{}\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{}</title><style>{STYLE}</style></head>\n<body><header><h1>{}</h1>\
             <p>facepipe {}</p></header><nav>{nav}</nav><main>\n{}</main></body></html>\n",
            self.generator,
            esc(&self.title),
            esc(&self.title),
            esc(facepipe_core::VERSION),
            self.body
        )
    }
}

/// A table cell: escaped text or raw markup, an optional class and background colour.
#[derive(Debug, Clone)]
pub struct Cell {
    pub html: String,
    pub class: Option<&'static str>,
    pub background: Option<[u8; 3]>,
}

impl Cell {
    pub fn text(s: &str) -> Cell {
        Cell {
            html: esc(s),
            class: None,
            background: None,
        }
    }

    pub fn code(s: &str) -> Cell {
        Cell {
            class: Some("code"),
            ..Cell::text(s)
        }
    }

    /// A class name with a swatch of its label colour.
    pub fn class_name(name: &str, rgb: [u8; 3]) -> Cell {
        Cell {
            html: format!(
                "<span class=\"swatch\" style=\"background:rgb({},{},{})\"></span>{}",
                rgb[0],
                rgb[1],
                rgb[2],
                esc(name)
            ),
            class: Some("l"),
            background: None,
        }
    }

    pub fn shaded(s: &str, background: [u8; 3]) -> Cell {
        Cell {
            background: Some(background),
            ..Cell::text(s)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_everywhere() {
        let mut p = Page::new("<t>", "<meta name=\"generator\" content=\"x\">");
        p.section("s", "a & b");
        p.p("<script>alert(1)</script>");
        p.table(&["h\"1"], &[vec!["<b>".into()]], 1);
        let html = p.finish();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("<title>&lt;t&gt;</title>"));
        assert!(html.contains("h&quot;1") && html.contains("&lt;b&gt;") && html.contains("a &amp; b"));
    }

    #[test]
    fn numbers_and_counts_read_well() {
        assert_eq!(num(Some(0.5)), "0.5000");
        assert_eq!(num(Some(3e-5)), "3.00e-5");
        assert_eq!(num(Some(0.0)), "0.0000");
        assert_eq!(num(None), "–");
        assert_eq!(count(1234567), "1\u{2009}234\u{2009}567");
        assert_eq!(count(999), "999");
    }

    #[test]
    fn a_picture_that_is_not_png_is_noted_not_embedded() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("x.png");
        std::fs::write(&f, b"GIF89a").unwrap();
        let mut p = Page::new("t", "");
        p.png(&f, "x", "c");
        p.png(&d.path().join("missing.png"), "x", "c");
        let html = p.finish();
        assert!(!html.contains("data:image/png"));
        assert!(html.contains("is not a PNG file") && html.contains("could not be read"));
    }
}
