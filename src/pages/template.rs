//! The landing page at `/`, like the exporter-toolkit's `landing_page.go`: a title, a
//! description, a list of links, an optional notice and any number of tables. The HTML is
//! the template `landing.html`; every value is escaped before it is filled in. The page
//! knows nothing of what the tables hold: the caller fills them.

/// The page template; `{{name}}` marks where a value goes.
const TEMPLATE: &str = include_str!("landing.html");

/// A piece of text in a list item or a table cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inline {
    /// Plain text.
    Text(String),
    /// A link.
    Link {
        /// Where it points (escaped into the attribute).
        href: String,
        /// What it shows.
        text: String,
    },
}

impl Inline {
    /// Plain text.
    pub fn text(s: impl Into<String>) -> Inline {
        Inline::Text(s.into())
    }

    /// A link to `href` showing `text`.
    pub fn link(href: impl Into<String>, text: impl Into<String>) -> Inline {
        Inline::Link {
            href: href.into(),
            text: text.into(),
        }
    }

    fn render(&self, out: &mut String) {
        match self {
            Inline::Text(s) => out.push_str(&esc(s)),
            Inline::Link { href, text } => {
                out.push_str(&format!("<a href=\"{}\">{}</a>", esc(href), esc(text)))
            }
        }
    }
}

/// A table cell, optionally with a CSS class (the template styles `up` and `down`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    /// What the cell shows.
    pub content: Inline,
    /// Its `class` attribute, if any.
    pub class: Option<&'static str>,
}

impl Cell {
    /// A plain-text cell.
    pub fn text(s: impl Into<String>) -> Cell {
        Cell {
            content: Inline::text(s),
            class: None,
        }
    }

    /// A cell holding `content`.
    pub fn new(content: Inline) -> Cell {
        Cell {
            content,
            class: None,
        }
    }

    /// The same cell with a CSS class.
    pub fn with_class(self, class: &'static str) -> Cell {
        Cell {
            class: Some(class),
            ..self
        }
    }
}

/// A table under its own heading.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Table {
    /// The `<h2>` above the table.
    pub heading: String,
    /// The column headings.
    pub columns: Vec<String>,
    /// The rows, each as many cells as there are columns.
    pub rows: Vec<Vec<Cell>>,
}

/// Everything the landing page shows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LandingPage {
    /// The `<title>` and `<h1>`.
    pub title: String,
    /// The paragraph under the title.
    pub description: String,
    /// The list items under the description, each a run of text and links.
    pub links: Vec<Vec<Inline>>,
    /// A warning shown above the tables (class `down`), if any.
    pub notice: Option<String>,
    /// The tables, in order.
    pub tables: Vec<Table>,
}

impl LandingPage {
    /// The page's HTML.
    pub fn render(&self) -> String {
        let mut links = String::new();
        for item in &self.links {
            links.push_str("<li>");
            for piece in item {
                piece.render(&mut links);
            }
            links.push_str("</li>\n");
        }
        let notice = self
            .notice
            .as_ref()
            .map(|n| format!("<p class=\"down\">{}</p>", esc(n)))
            .unwrap_or_default();
        let tables: String = self.tables.iter().map(render_table).collect();
        fill(
            TEMPLATE,
            &[
                ("title", &esc(&self.title)),
                ("description", &esc(&self.description)),
                ("links", &links),
                ("notice", &notice),
                ("tables", &tables),
            ],
        )
    }
}

fn render_table(t: &Table) -> String {
    let mut out = format!("<h2>{}</h2>\n<table><tr>", esc(&t.heading));
    for c in &t.columns {
        out.push_str(&format!("<th>{}</th>", esc(c)));
    }
    out.push_str("</tr>\n");
    for row in &t.rows {
        out.push_str("<tr>");
        for cell in row {
            match cell.class {
                Some(class) => out.push_str(&format!("<td class=\"{}\">", esc(class))),
                None => out.push_str("<td>"),
            }
            cell.content.render(&mut out);
            out.push_str("</td>");
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    out
}

/// Replaces each `{{name}}` in `template` by its (already escaped) value, in one pass, so
/// a value that itself contains `{{…}}` is not expanded again. Unknown names stay as they
/// are (a test checks the template uses none).
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out =
        String::with_capacity(template.len() + values.iter().map(|v| v.1.len()).sum::<usize>());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let value = after.find("}}").and_then(|end| {
            values
                .iter()
                .find(|(k, _)| *k == &after[..end])
                .map(|v| (end, v.1))
        });
        match value {
            Some((end, v)) => {
                out.push_str(v);
                rest = &after[end + 2..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Escapes text for HTML (element content and quoted attribute values).
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escaping() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn the_template_uses_only_known_placeholders() {
        let page = LandingPage::default().render();
        assert!(!page.contains("{{"), "{page}");
        assert!(page.starts_with("<!DOCTYPE html>\n"));
        assert!(page.ends_with("</body></html>\n"));
    }

    #[test]
    fn values_are_escaped_and_not_expanded_twice() {
        let page = LandingPage {
            title: "T<1>".into(),
            description: "{{tables}}".into(),
            links: vec![vec![
                Inline::link("/probe?target=a\"b", "x&y"),
                Inline::text(": z"),
            ]],
            notice: Some("<script>".into()),
            tables: vec![Table {
                heading: "H".into(),
                columns: vec!["a".into(), "b".into()],
                rows: vec![vec![Cell::text("1").with_class("up"), Cell::text("<2>")]],
            }],
        }
        .render();
        assert!(page.contains("<title>T&lt;1&gt;</title>"), "{page}");
        assert!(page.contains("<p>{{tables}}</p>"), "{page}");
        assert!(
            page.contains("<li><a href=\"/probe?target=a&quot;b\">x&amp;y</a>: z</li>\n</ul>"),
            "{page}"
        );
        assert!(
            page.contains("<p class=\"down\">&lt;script&gt;</p>"),
            "{page}"
        );
        assert!(
            page.contains(
                "<h2>H</h2>\n<table><tr><th>a</th><th>b</th></tr>\n<tr><td class=\"up\">1</td><td>&lt;2&gt;</td></tr>\n</table>\n"
            ),
            "{page}"
        );
    }
}
