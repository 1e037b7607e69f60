//! The report's text as typed blocks: headings, paragraphs and tables whose cells carry their
//! verdicts as data. The Markdown and HTML renderings are both made from these blocks; text may
//! hold the small inline markup the report uses (`code`, **bold**).

use std::fmt::Write;

use super::verdict::Level;

/// One piece of a paragraph.
#[derive(Debug, Clone, PartialEq)]
pub enum Span {
    Text(String),
    /// A verdict mark (🟢 in Markdown, a coloured dot in HTML).
    Mark(Level),
}

/// A table cell: text, and the verdicts of the figures it shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell(pub Vec<Span>);

impl Cell {
    /// A figure with its verdict (none: plain).
    pub fn judged(text: impl Into<String>, verdict: Option<Level>) -> Self {
        match verdict {
            Some(l) => Self(vec![Span::Mark(l), Span::Text(format!(" {}", text.into()))]),
            None => Self(vec![Span::Text(text.into())]),
        }
    }
}

impl From<String> for Cell {
    fn from(text: String) -> Self {
        Self(vec![Span::Text(text)])
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Self {
        Self::from(text.to_string())
    }
}

/// How a column is aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A table.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub head: Vec<String>,
    pub align: Vec<Align>,
    pub rows: Vec<Vec<Cell>>,
}

/// A block of the report.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// A heading of level 1 to 3.
    Heading(u8, String),
    Paragraph(Vec<Span>),
    /// A paragraph set apart (a warning about the figures).
    Note(Vec<Span>),
    Table(Table),
}

/// A section of the report: an id (the HTML anchor) and its blocks, the first its heading.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    pub id: &'static str,
    pub blocks: Vec<Block>,
}

impl Section {
    /// The section's title (its first heading).
    pub fn title(&self) -> &str {
        self.blocks
            .iter()
            .find_map(|b| match b {
                Block::Heading(_, t) => Some(t.as_str()),
                _ => None,
            })
            .unwrap_or(self.id)
    }
}

/// Builds a list of blocks.
#[derive(Debug, Default)]
pub struct Blocks(pub Vec<Block>);

impl Blocks {
    pub fn heading(&mut self, level: u8, text: impl Into<String>) {
        self.0.push(Block::Heading(level, text.into()));
    }

    /// A paragraph of plain text.
    pub fn para(&mut self, text: impl Into<String>) {
        self.0.push(Block::Paragraph(vec![Span::Text(text.into())]));
    }

    /// A note set apart from the text.
    pub fn note(&mut self, text: impl Into<String>) {
        self.0.push(Block::Note(vec![Span::Text(text.into())]));
    }

    /// A paragraph of text and marks.
    pub fn spans(&mut self, spans: Vec<Span>) {
        self.0.push(Block::Paragraph(spans));
    }

    /// Starts a table: `align` has one letter per column, `l` or `r`.
    pub fn table(&mut self, head: &[&str], align: &str) -> &mut Table {
        let align = align
            .chars()
            .map(|c| if c == 'r' { Align::Right } else { Align::Left })
            .collect();
        self.0.push(Block::Table(Table {
            head: head.iter().map(|h| h.to_string()).collect(),
            align,
            rows: Vec::new(),
        }));
        match self.0.last_mut() {
            Some(Block::Table(t)) => t,
            _ => unreachable!("a table was just pushed"),
        }
    }
}

impl Table {
    /// Adds a row.
    pub fn row(&mut self, cells: Vec<Cell>) {
        self.rows.push(cells);
    }
}

/// Text and marks as Markdown (marks as their emoji).
fn spans_markdown(spans: &[Span]) -> String {
    spans
        .iter()
        .map(|s| match s {
            Span::Text(t) => t.as_str(),
            Span::Mark(l) => l.mark(),
        })
        .collect()
}

/// Renders blocks as Markdown: a blank line after every block.
pub fn to_markdown(blocks: &[Block]) -> String {
    let mut out = String::new();
    for b in blocks {
        match b {
            Block::Heading(level, text) => {
                let _ = writeln!(out, "{} {text}\n", "#".repeat(usize::from(*level)));
            }
            Block::Paragraph(spans) => {
                out.push_str(&spans_markdown(spans));
                out.push_str("\n\n");
            }
            Block::Note(spans) => {
                let _ = write!(out, "> {}\n\n", spans_markdown(spans));
            }
            Block::Table(t) => {
                let _ = writeln!(out, "| {} |", t.head.join(" | "));
                let align: Vec<&str> = t
                    .align
                    .iter()
                    .map(|a| match a {
                        Align::Left => "---",
                        Align::Right => "---:",
                    })
                    .collect();
                let _ = writeln!(out, "|{}|", align.join("|"));
                for r in &t.rows {
                    let cells: Vec<String> = r.iter().map(|c| spans_markdown(&c.0)).collect();
                    let _ = writeln!(out, "| {} |", cells.join(" | "));
                }
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_render_as_markdown_with_marks_from_verdicts() {
        let mut b = Blocks::default();
        b.heading(2, "Title");
        b.spans(vec![Span::Text("Marks: ".into()), Span::Mark(Level::Good)]);
        let t = b.table(&["a", "b"], "lr");
        t.row(vec!["x".into(), Cell::judged("1", Some(Level::Poor))]);
        assert_eq!(
            to_markdown(&b.0),
            "## Title\n\nMarks: 🟢\n\n| a | b |\n|---|---:|\n| x | 🔴 1 |\n\n"
        );
    }
}
