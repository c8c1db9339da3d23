//! Output: stdout/stderr lines that never panic, and aligned tables for humans.

use std::io::Write as _;

/// Print a line on stdout. A closed pipe (`hatchery … | head -1`) is not an error worth
/// a panic: the line is dropped.
pub fn out(line: impl std::fmt::Display) {
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// Print one diagnostic line on stderr, newlines in it escaped so it stays one line.
pub fn err(line: impl std::fmt::Display) {
    let text = line.to_string().replace('\r', "\\r").replace('\n', "\\n");
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// A plain text table: a header row, then rows, columns padded to their widest cell.
pub struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: Vec<&'static str>) -> Self {
        Self {
            header,
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let header: Vec<String> = self.header.iter().map(|h| (*h).to_owned()).collect();
        std::iter::once(&header)
            .chain(&self.rows)
            .map(|row| format_row(row, &widths))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn format_row(cells: &[String], widths: &[usize]) -> String {
    let last = cells.len().saturating_sub(1);
    let mut line = String::new();
    for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
        line.push_str(cell);
        if i < last {
            let pad = width - cell.chars().count() + 2;
            line.extend(std::iter::repeat_n(' ', pad));
        }
    }
    line
}

/// `-` for an empty cell, so columns never look shifted.
pub fn or_dash(value: &str) -> String {
    if value.is_empty() {
        "-".to_owned()
    } else {
        value.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnostics_stay_on_one_line() {
        let text = "a\nb\r".replace('\r', "\\r").replace('\n', "\\n");
        assert_eq!(text, "a\\nb\\r");
    }

    #[test]
    fn columns_align_to_the_widest_cell() {
        let mut table = Table::new(vec!["NAME", "X"]);
        table.row(vec!["a-long-name".into(), "1".into()]);
        table.row(vec!["b".into(), "22".into()]);
        assert_eq!(
            table.render(),
            "NAME         X\na-long-name  1\nb            22"
        );
    }
}
