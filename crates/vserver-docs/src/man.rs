//! Man pages: clap_mangen's sections from the clap definitions (name,
//! synopsis, options, subcommands, version) around the hand-written text of
//! `pages/NAME.txt` (description, examples, exit status, files, see also),
//! written for admins.
//!
//! A page file is plain text: a line in capitals starts a section
//! (`EXAMPLES`), blank lines separate paragraphs, lines indented by two
//! spaces are shown as they are (commands, tables).

use std::io::{self, Write};

/// One block of a section.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Block {
    Paragraph(String),
    Literal(Vec<String>),
}

/// The sections of a page file, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageText {
    sections: Vec<(String, Vec<Block>)>,
}

impl PageText {
    pub fn parse(text: &str) -> PageText {
        let mut page = PageText::default();
        let mut para: Vec<&str> = Vec::new();
        let mut literal: Vec<String> = Vec::new();
        let flush = |page: &mut PageText, para: &mut Vec<&str>, literal: &mut Vec<String>| {
            let Some((_, blocks)) = page.sections.last_mut() else { return };
            if !para.is_empty() {
                blocks.push(Block::Paragraph(para.join(" ")));
                para.clear();
            }
            if !literal.is_empty() {
                blocks.push(Block::Literal(std::mem::take(literal)));
            }
        };
        for line in text.lines() {
            let is_title = !line.is_empty() && !line.starts_with(' ') && line.chars().all(|c| c.is_ascii_uppercase() || c == ' ');
            if is_title {
                flush(&mut page, &mut para, &mut literal);
                page.sections.push((line.trim().to_string(), Vec::new()));
            } else if let Some(lit) = line.strip_prefix("  ") {
                if !para.is_empty() {
                    flush(&mut page, &mut para, &mut literal);
                }
                literal.push(lit.to_string());
            } else if line.trim().is_empty() {
                flush(&mut page, &mut para, &mut literal);
            } else {
                if !literal.is_empty() {
                    flush(&mut page, &mut para, &mut literal);
                }
                para.push(line.trim());
            }
        }
        flush(&mut page, &mut para, &mut literal);
        page
    }

    pub fn has(&self, title: &str) -> bool {
        self.sections.iter().any(|(t, _)| t == title)
    }

    fn write_section(&self, title: &str, out: &mut dyn Write) -> io::Result<()> {
        for (t, blocks) in self.sections.iter().filter(|(t, _)| t == title) {
            writeln!(out, ".SH {t}")?;
            write_blocks(blocks, out)?;
        }
        Ok(())
    }
}

fn write_blocks(blocks: &[Block], out: &mut dyn Write) -> io::Result<()> {
    for b in blocks {
        match b {
            Block::Paragraph(p) => writeln!(out, ".PP\n{}", escape(p))?,
            Block::Literal(lines) => {
                writeln!(out, ".PP\n.RS 4\n.nf")?;
                for l in lines {
                    writeln!(out, "{}", escape(l))?;
                }
                writeln!(out, ".fi\n.RE")?;
            }
        }
    }
    Ok(())
}

/// roff: backslashes, hyphens (minus signs in commands), and lines that
/// would start with a control character.
pub fn escape(text: &str) -> String {
    let s = text.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

/// The hand-written text of page `name`, if there is one.
pub fn page_text(name: &str) -> Option<PageText> {
    crate::PAGES.iter().find(|(n, _)| *n == name).map(|(_, t)| PageText::parse(t))
}

/// The page of `cmd` (whose name is the page name: `vserver-start`).
pub fn render(cmd: &clap::Command, out: &mut dyn Write) -> io::Result<()> {
    // After build(), a subcommand's display name is its page's: `vserver-start`.
    let name = cmd.get_display_name().unwrap_or(cmd.get_name()).to_string();
    let text = page_text(&name).unwrap_or_default();
    let man = clap_mangen::Man::new(cmd.clone()).manual("vserver-rs").source(format!("vserver-rs {}", env!("CARGO_PKG_VERSION")));
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    if text.has("DESCRIPTION") {
        text.write_section("DESCRIPTION", out)?;
    } else {
        man.render_description_section(out)?;
    }
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(out)?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(out)?;
    }
    for (title, _) in text.sections.iter().filter(|(t, _)| t != "DESCRIPTION") {
        text.write_section(title, out)?;
    }
    if !text.has("EXAMPLES") {
        // No page file: clap's own examples and exit codes.
        if let Some(after) = cmd.get_after_long_help().or_else(|| cmd.get_after_help()) {
            let title = if after.to_string().contains("Example") { "EXAMPLES" } else { "NOTES" };
            writeln!(out, ".SH {title}")?;
            let lines: Vec<String> = after.to_string().lines().map(str::to_string).collect();
            write_blocks(&[Block::Literal(lines)], out)?;
        }
    }
    if cmd.get_version().is_some() {
        man.render_version_section(out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_text_sections_paragraphs_and_literals() {
        let p = PageText::parse("DESCRIPTION\nOne\nparagraph.\n\nTwo.\n\nEXAMPLES\n  vps ax\n  vps -ef\nText after.\n");
        assert_eq!(
            p.sections,
            vec![
                ("DESCRIPTION".into(), vec![Block::Paragraph("One paragraph.".into()), Block::Paragraph("Two.".into())]),
                ("EXAMPLES".into(), vec![Block::Literal(vec!["vps ax".into(), "vps -ef".into()]), Block::Paragraph("Text after.".into())]),
            ]
        );
        assert_eq!(escape(".hidden a-b \\n"), "\\&.hidden a\\-b \\en");
    }

    #[test]
    fn every_page_file_belongs_to_a_command() {
        let mut names = Vec::new();
        fn walk(cmd: &clap::Command, prefix: &str, out: &mut Vec<String>) {
            let name = if prefix.is_empty() { cmd.get_name().to_string() } else { format!("{prefix}-{}", cmd.get_name()) };
            for s in cmd.get_subcommands() {
                walk(s, &name, out);
            }
            out.push(name);
        }
        for mut c in crate::commands() {
            c.build();
            walk(&c, "", &mut names);
        }
        for (page, text) in crate::PAGES {
            assert!(names.iter().any(|n| n == page), "pages/{page}.txt has no command");
            assert!(PageText::parse(text).has("DESCRIPTION"), "pages/{page}.txt has no DESCRIPTION");
        }
    }
}
