//! The widgets: the whole screen is `impl Widget for &Dashboard`, made of a
//! header, the view tabs, the selected view and a status line. Everything is
//! drawn from the dashboard's state; nothing here changes it.

use crate::state::{
    BoundaryKey, BoundaryRow, BoundarySort, Dashboard, FunctionSort, StackRow, View, DETAIL_STACKS,
};
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Borders, Cell as TableCell, Clear, Paragraph, Row, Sparkline, StatefulWidget, Table,
    TableState, Widget, Wrap,
};
use seam_export::{glue_ns_text, percent, runtime_color, thousands};
use seam_proto::{CrossingsMethod, Runtime};
use std::cell::Cell;

/// Below this width the tables use short column names.
const WIDE: u16 = 100;

const KEYS: &[(&str, &str)] = &[
    ("1-5, tab", "switch view"),
    ("up/down, j/k", "select a row (a stack in the detail)"),
    ("pgup/pgdn", "select 10 rows up or down"),
    ("enter", "open the selected boundary's detail"),
    ("esc", "back from the detail or this help"),
    ("s", "cycle the sort column"),
    ("p", "pause the display (the recording goes on)"),
    ("f", "write the flamegraph of the profile so far"),
    ("r", "reset the counters and rates"),
    ("?", "this help"),
    ("q, ctrl-c", "quit"),
];

fn color(runtime: Runtime) -> Color {
    let seam_export::Rgb(r, g, b) = runtime_color(runtime);
    Color::Rgb(r, g, b)
}

/// Row `i` of `area`, one line high (callers check that `area` has it).
fn line(area: Rect, i: u16) -> Rect {
    Rect {
        y: area.y + i,
        height: 1,
        ..area
    }
}

fn bold() -> Style {
    Style::default().add_modifier(Modifier::BOLD)
}

impl Widget for &Dashboard {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let [header, tabs, body, footer] = Layout::vertical([
            Constraint::Length(2),
            Constraint::Length(1),
            Constraint::Fill(1),
            Constraint::Length(1),
        ])
        .areas(area);
        render_header(self, header, buf);
        render_tabs(self, tabs, buf);
        match self.view() {
            View::Overview => {
                let [bar, table] =
                    Layout::vertical([Constraint::Length(3), Constraint::Fill(1)]).areas(body);
                render_runtime_bar(self, bar, buf);
                render_boundaries(self, table, buf);
            }
            View::Boundaries => render_boundaries(self, body, buf),
            View::Stacks => render_functions(self, body, buf),
            View::Threads => render_threads(self, body, buf),
            View::Detail => render_detail(self, body, buf),
        }
        render_footer(self, footer, buf);
        if self.help() {
            render_help(body, buf);
        }
    }
}

fn render_header(d: &Dashboard, area: Rect, buf: &mut Buffer) {
    if area.height == 0 {
        return;
    }
    let profile = d.profile();
    let totals = d.totals();
    let rates = d.rates();
    let target = if profile.target.command.is_empty() {
        "(starting)".to_string()
    } else {
        profile.target.command.join(" ")
    };
    let first = vec![
        Span::styled("seam top ", bold()),
        Span::raw(format!("pid {} ", profile.target.pid)),
        Span::raw(target),
    ];
    // What seam costs, at the right of the first line before the flags,
    // when there is room for it beside the pid.
    let mut costs = Vec::new();
    if profile.seam_cpu_s > 0.0 {
        costs.push(Span::raw(format!(
            " seam CPU {:.1}%",
            d.rates().seam_cpu_share * 100.0
        )));
    }
    if let Some(s) = &profile.sampling_overhead {
        let style = if s.over_budget {
            Style::default().fg(Color::Red).add_modifier(Modifier::BOLD)
        } else {
            Style::default()
        };
        costs.push(Span::styled(
            format!("  sampling ≥{:.1}%", s.share * 100.0),
            style,
        ));
    }
    if let Some(p) = &profile.probe_overhead {
        costs.push(Span::raw(format!("  probes ≥{:.1}%", p.share * 100.0)));
    }
    // The switch-outs' stacks paused to keep sampling within the budget
    // (off-CPU time then attributed more coarsely): said where there is room.
    let paused = profile
        .sampling_overhead
        .as_ref()
        .map_or(0.0, |s| s.switch_stacks_paused);
    let paused = (paused > 0.0).then(|| {
        Span::styled(
            format!("  switch stacks paused {}", percent(paused)),
            Style::default().fg(Color::Yellow),
        )
    });
    let mut flags = Vec::new();
    if d.paused() {
        flags.push(Span::styled(
            " [paused]",
            Style::default()
                .fg(Color::Yellow)
                .add_modifier(Modifier::BOLD),
        ));
    }
    if let Some(status) = d.exited() {
        let text = match status {
            Some(s) => format!(" [target exited, status {s}]"),
            None => " [target exited]".to_string(),
        };
        flags.push(Span::styled(
            text,
            Style::default()
                .fg(Color::Yellow)
                .add_modifier(Modifier::BOLD),
        ));
    }
    let width = |spans: &[Span]| spans.iter().map(|s| s.width()).sum::<usize>();
    let pid_width = first[0].width() + first[1].width();
    let room = (area.width as usize).saturating_sub(pid_width + width(&flags));
    // Said only where the target's whole command line fits too: the costs
    // are drawn over the end of it.
    let command_width = first[2].width();
    if let Some(span) = paused.filter(|p| command_width + width(&costs) + p.width() <= room) {
        costs.push(span);
    }
    if width(&costs) <= room {
        costs.append(&mut flags);
        flags = costs;
    }
    let flags_width = width(&flags);
    let [left, right] =
        Layout::horizontal([Constraint::Fill(1), Constraint::Length(flags_width as u16)])
            .areas(line(area, 0));
    Paragraph::new(Line::from(first)).render(left, buf);
    Paragraph::new(Line::from(flags)).render(right, buf);

    if area.height < 2 {
        return;
    }
    let second = vec![
        Span::raw(format!("{:.0}s  ", profile.duration_s)),
        Span::raw(format!("threads {}  ", d.thread_count())),
        Span::raw(format!("rate {} Hz  ", profile.rate_hz)),
        Span::raw(format!(
            "samples/s {}  ",
            thousands(rates.samples_per_s.round() as u64)
        )),
        Span::styled(
            format!("lost {}", thousands(totals.lost_detail.kernel)),
            red_unless_zero(totals.lost_detail.kernel),
        ),
        Span::styled(
            format!("  dropped {}", thousands(totals.lost_detail.seam)),
            red_unless_zero(totals.lost_detail.seam),
        ),
        Span::raw(format!("  complete {:.1}%", totals.complete_share * 100.0)),
    ];
    // Where many stacks are incomplete, the commonest reason why (a Python
    // seam cannot read names its version), as far as the line has room.
    let mut second = second;
    if totals.samples > 0 && totals.complete_share < INCOMPLETE_SAID_BELOW {
        // Recoveries are counted with the problems, but are none.
        let recovered = |why: &str| {
            why.starts_with("python frames found from the sample's stack")
                || why.starts_with("frames past a stack switch taken from an earlier walk")
        };
        if let Some((why, _)) = totals
            .problems
            .iter()
            .filter(|(why, _)| !recovered(why))
            .max_by_key(|(_, &n)| n)
        {
            second.push(Span::styled(
                format!("  mostly: {why}"),
                Style::default().fg(Color::Yellow),
            ));
        }
    }

    Paragraph::new(Line::from(second)).render(line(area, 1), buf);
}

/// Below this share of complete stacks, the header says the commonest problem.
const INCOMPLETE_SAID_BELOW: f64 = 0.9;

/// Red and bold when `count` is not zero: something was lost.
fn red_unless_zero(count: u64) -> Style {
    if count > 0 {
        Style::default().fg(Color::Red).add_modifier(Modifier::BOLD)
    } else {
        Style::default()
    }
}

fn render_tabs(d: &Dashboard, area: Rect, buf: &mut Buffer) {
    let mut spans = Vec::new();
    for (i, view) in View::ALL.iter().enumerate() {
        let text = format!(" {} {} ", i + 1, view.title());
        spans.push(if *view == d.view() {
            Span::styled(text, Style::default().add_modifier(Modifier::REVERSED))
        } else {
            Span::raw(text)
        });
    }
    Paragraph::new(Line::from(spans)).render(area, buf);
}

fn render_footer(d: &Dashboard, area: Rect, buf: &mut Buffer) {
    let line = if d.status().is_empty() {
        Line::from(
            "q quit  ? help  1-5 views  enter detail  s sort  p pause  f flamegraph  r reset",
        )
        .style(Style::default().fg(Color::DarkGray))
    } else {
        Line::from(d.status().to_string()).style(Style::default().fg(Color::Cyan))
    };
    Paragraph::new(line).render(area, buf);
}

/// Self time per runtime as one bar, with a legend.
fn render_runtime_bar(d: &Dashboard, area: Rect, buf: &mut Buffer) {
    let totals = d.totals();
    let block = Block::default()
        .borders(Borders::TOP)
        .title(" runtimes (self time) ");
    let inner = block.inner(area);
    block.render(area, buf);
    if inner.height == 0 || inner.width == 0 {
        return;
    }
    let shares: Vec<(Runtime, f64)> = Runtime::ALL
        .iter()
        .map(|&r| (r, totals.self_share(r)))
        .filter(|(_, s)| *s > 0.0)
        .collect();
    let cells = split_cells(
        inner.width as usize,
        &shares.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
    );
    let mut bar = Vec::new();
    for ((runtime, _), n) in shares.iter().zip(&cells) {
        bar.push(Span::styled(
            "█".repeat(*n),
            Style::default().fg(color(*runtime)),
        ));
    }
    if shares.is_empty() {
        bar.push(Span::styled(
            "no samples yet",
            Style::default().fg(Color::DarkGray),
        ));
    }
    Paragraph::new(Line::from(bar)).render(line(inner, 0), buf);
    if inner.height > 1 {
        let mut legend = Vec::new();
        for (runtime, share) in &shares {
            legend.push(Span::styled("■ ", Style::default().fg(color(*runtime))));
            legend.push(Span::raw(format!("{runtime} {:.1}%  ", share * 100.0)));
        }
        Paragraph::new(Line::from(legend)).render(line(inner, 1), buf);
    }
}

/// Splits `width` cells among shares by largest remainders.
fn split_cells(width: usize, shares: &[f64]) -> Vec<usize> {
    let total: f64 = shares.iter().sum();
    if total <= 0.0 {
        return vec![0; shares.len()];
    }
    let exact: Vec<f64> = shares.iter().map(|s| s / total * width as f64).collect();
    let mut cells: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
    let mut order: Vec<usize> = (0..shares.len()).collect();
    order.sort_by(|&a, &b| {
        (exact[b] - exact[b].floor())
            .total_cmp(&(exact[a] - exact[a].floor()))
            .then(a.cmp(&b))
    });
    let mut rest = width - cells.iter().sum::<usize>();
    for i in order {
        if rest == 0 {
            break;
        }
        cells[i] += 1;
        rest -= 1;
    }
    cells
}

fn boundary_name(row: &BoundaryRow) -> String {
    format!("{} -> {}", row.key.0, row.key.1)
}

/// The crossing rate; an extrapolated one with `~`, and its error when
/// `with_error` (as the end-of-run table prints it).
fn crossings_rate(row: &BoundaryRow, with_error: bool) -> String {
    match (row.crossings_per_s, row.crossings_method) {
        (Some(r), CrossingsMethod::Extrapolated) => extrapolated(r.round() as u64, row, with_error),
        (Some(r), _) => thousands(r.round() as u64),
        (None, _) => "-".to_string(),
    }
}

/// `n`, extrapolated: `~n`, and `±E%` from the row's error when `with_error`.
fn extrapolated(n: u64, row: &BoundaryRow, with_error: bool) -> String {
    match row.crossings {
        Some(c) if with_error && c > 0 => format!(
            "~{} ±{:.0}%",
            thousands(n),
            (100.0 * row.crossings_error as f64 / c as f64).min(999.0)
        ),
        _ => format!("~{}", thousands(n)),
    }
}

fn render_boundaries(d: &Dashboard, area: Rect, buf: &mut Buffer) {
    let rows = d.boundary_rows();
    let wide = area.width >= WIDE;
    let sort = d.boundary_sort();
    let headers: [(&str, &str, Option<BoundarySort>); 9] = [
        ("boundary", "boundary", None),
        ("mechanism", "via", None),
        ("through", "through", Some(BoundarySort::Through)),
        ("glue CPU", "glue", Some(BoundarySort::GlueCpu)),
        ("crossings/s", "cross/s", Some(BoundarySort::CrossingsPerS)),
        ("glue ns/crossing", "ns/x", None),
        ("off-CPU ms/s", "offms/s", Some(BoundarySort::OffCpu)),
        ("switches/s", "sw/s", Some(BoundarySort::Switches)),
        ("off-CPU mostly", "mostly", None),
    ];
    let header = Row::new(headers.iter().map(|(long, short, by)| {
        let text = if wide { *long } else { *short };
        if *by == Some(sort) {
            Span::styled(
                format!("{text}▼"),
                bold().add_modifier(Modifier::UNDERLINED),
            )
        } else {
            Span::styled(text, bold())
        }
    }));
    let widths = if wide {
        [18, 11, 8, 9, 16, 17, 13, 11, 14].map(Constraint::Length)
    } else {
        [15, 9, 8, 6, 9, 6, 7, 5, 8].map(Constraint::Length)
    };
    let body: Vec<Row> = rows
        .iter()
        .map(|r| {
            Row::new(vec![
                Line::from(vec![
                    Span::styled(r.key.0.as_str(), Style::default().fg(color(r.key.0))),
                    Span::raw(" -> "),
                    Span::styled(r.key.1.as_str(), Style::default().fg(color(r.key.1))),
                ]),
                Line::from(r.key.2.as_str()),
                Line::from(percent(r.through)).right_aligned(),
                Line::from(percent(r.glue_cpu)).right_aligned(),
                Line::from(crossings_rate(r, wide)).right_aligned(),
                Line::from(if wide {
                    glue_ns_text(r.glue_ns_per_crossing, r.glue_ns_error)
                } else {
                    glue_ns_text(r.glue_ns_per_crossing, None)
                })
                .right_aligned(),
                Line::from(format!("{:.0}", r.off_cpu_ms_per_s)).right_aligned(),
                Line::from(format!("{:.0}", r.switches_per_s)).right_aligned(),
                Line::from(
                    r.causes
                        .first()
                        .map_or("-".to_string(), |(cause, _)| cause.clone()),
                ),
            ])
        })
        .collect();
    let title = format!(" boundaries ({} seen) ", rows.len());
    let empty = rows.is_empty();
    render_table(
        Table::new(body, widths).header(header),
        title,
        (d.selected_row(View::Boundaries), rows.len()),
        d.scroll(View::Boundaries),
        area,
        buf,
    );
    if empty && area.height > 3 {
        Paragraph::new("no crossing seen yet")
            .style(Style::default().fg(Color::DarkGray))
            .render(line(area, 2), buf);
    }
}

/// The first row to show of a table of `len` rows with room for `visible`:
/// the one shown before (`previous`), unless the selection left the screen,
/// in which case just enough to bring it back, at the edge it left by.
pub fn scroll_offset(previous: usize, selected: usize, visible: usize, len: usize) -> usize {
    if visible == 0 || len <= visible {
        return 0;
    }
    let offset = if selected < previous {
        selected
    } else if selected >= previous + visible {
        selected + 1 - visible
    } else {
        previous
    };
    offset.min(len - visible)
}

/// A table of one-line rows (`selected` and the number of rows in `rows`)
/// under a titled rule, its selected row in reverse video and scrolled into
/// view; the title says which rows show when not all fit.
pub(crate) fn render_table(
    table: Table<'_>,
    title: String,
    (selected, len): (usize, usize),
    scroll: &Cell<usize>,
    area: Rect,
    buf: &mut Buffer,
) {
    // The rule above and the header take a line each.
    let visible = area.height.saturating_sub(2) as usize;
    let offset = scroll_offset(scroll.get(), selected, visible, len);
    scroll.set(offset);
    let title = if len > visible && visible > 0 {
        format!("{title}rows {}-{} of {len} ", offset + 1, offset + visible)
    } else {
        title
    };
    let table = table
        .block(Block::default().borders(Borders::TOP).title(title))
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED));
    let mut state = TableState::default()
        .with_offset(offset)
        .with_selected(Some(selected));
    StatefulWidget::render(table, area, buf, &mut state);
}

fn render_functions(d: &Dashboard, area: Rect, buf: &mut Buffer) {
    let rows = d.function_rows();
    let sort = d.function_sort();
    let mark = |text: &'static str, by: FunctionSort| {
        if by == sort {
            Span::styled(
                format!("{text}▼"),
                bold().add_modifier(Modifier::UNDERLINED),
            )
        } else {
            Span::styled(text, bold())
        }
    };
    let header = Row::new(vec![
        mark("own", FunctionSort::Own),
        mark("total", FunctionSort::Total),
        Span::styled("runtime", bold()),
        Span::styled("function", bold()),
    ]);
    let body: Vec<Row> = rows
        .iter()
        .map(|r| {
            let mut name = vec![Span::raw(r.name.clone())];
            if let Some(m) = r.seam {
                name.push(Span::styled(
                    format!(" [seam {}]", m.as_str()),
                    Style::default().fg(color(Runtime::Glue)),
                ));
            }
            Row::new(vec![
                Line::from(percent(r.own)).right_aligned(),
                Line::from(percent(r.total)).right_aligned(),
                Line::from(Span::styled(
                    r.runtime.as_str(),
                    Style::default().fg(color(r.runtime)),
                )),
                Line::from(name),
            ])
        })
        .collect();
    let widths = [
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Fill(1),
    ];
    render_table(
        Table::new(body, widths).header(header),
        format!(" hot functions ({}) ", rows.len()),
        (d.selected_row(View::Stacks), rows.len()),
        d.scroll(View::Stacks),
        area,
        buf,
    );
}

fn render_threads(d: &Dashboard, area: Rect, buf: &mut Buffer) {
    let rows = d.thread_rows();
    let header = Row::new(
        [
            "tid", "name", "samples", "on-CPU", "now in", "off-CPU", "mostly",
        ]
        .map(|h| Span::styled(h, bold()))
        .to_vec(),
    );
    let body: Vec<Row> = rows
        .iter()
        .map(|t| {
            let now = t.runtime_now.map_or(Span::raw("-"), |r| {
                Span::styled(r.as_str(), Style::default().fg(color(r)))
            });
            Row::new(vec![
                Line::from(t.tid.to_string()).right_aligned(),
                Line::from(t.name.clone()),
                Line::from(percent(t.share)).right_aligned(),
                Line::from(percent(t.on_cpu)).right_aligned(),
                Line::from(now),
                Line::from(percent(t.off_cpu)).right_aligned(),
                Line::from(t.off_cpu_cause.clone().unwrap_or_else(|| "-".into())),
            ])
        })
        .collect();
    render_table(
        Table::new(body, [8, 18, 8, 7, 8, 8, 14].map(Constraint::Length)).header(header),
        format!(" threads ({}) ", rows.len()),
        (d.selected_row(View::Threads), rows.len()),
        d.scroll(View::Threads),
        area,
        buf,
    );
}

fn render_detail(d: &Dashboard, area: Rect, buf: &mut Buffer) {
    let Some(b) = d.selected_boundary() else {
        Paragraph::new("no boundary seen yet: the detail shows the boundary selected in view 2")
            .block(Block::default().borders(Borders::TOP).title(" boundary "))
            .render(area, buf);
        return;
    };
    let title = format!(" {} via {} ", boundary_name(&b), b.key.2.as_str());
    let block = Block::default().borders(Borders::TOP).title(title);
    let inner = block.inner(area);
    block.render(area, buf);
    let [figures, causes, crossings, glue, stacks] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Length(1),
        Constraint::Length(3),
        Constraint::Length(3),
        Constraint::Fill(1),
    ])
    .areas(inner);

    let total = match (b.crossings, b.crossings_method) {
        (Some(c), CrossingsMethod::Extrapolated) => extrapolated(c, &b, true),
        (Some(c), _) => thousands(c),
        (None, _) => "not counted".to_string(),
    };
    Paragraph::new(vec![
        Line::from(format!(
            "crossings/s {}  total {}  glue CPU {}  ns/crossing {}",
            crossings_rate(&b, true),
            total,
            percent(b.glue_cpu),
            glue_ns_text(b.glue_ns_per_crossing, b.glue_ns_error),
        )),
        Line::from(format!(
            "off-CPU {:.0} ms/s  switches/s {:.0}",
            b.off_cpu_ms_per_s, b.switches_per_s,
        )),
    ])
    .render(figures, buf);

    let causes_text = if b.causes.is_empty() {
        "off-CPU causes: none seen".to_string()
    } else {
        let list: Vec<String> = b
            .causes
            .iter()
            .map(|(cause, ms)| format!("{cause} {ms:.0} ms"))
            .collect();
        format!("off-CPU causes: {}", list.join(", "))
    };
    Paragraph::new(causes_text).render(causes, buf);

    render_sparkline(
        "crossings/s",
        &d.crossings_history(b.key),
        thousands,
        crossings,
        buf,
    );
    render_sparkline(
        "glue CPU",
        &d.glue_history(b.key),
        |v| format!("{:.1}%", v as f64 / 10.0),
        glue,
        buf,
    );

    render_detail_stacks(d, b.key, stacks, buf);
}

/// The stacks through a boundary as a table to select from (one line each,
/// cut at the screen's edge), and the selected one in full below it, wrapped.
fn render_detail_stacks(d: &Dashboard, boundary: BoundaryKey, area: Rect, buf: &mut Buffer) {
    let rows = d.stacks_through(boundary, DETAIL_STACKS);
    let selected = d
        .selected_row(View::Detail)
        .min(rows.len().saturating_sub(1));
    // The list takes what its rows need, up to 60% of the room; the
    // selected stack in full gets the rest.
    let list_height = (rows.len() as u16 + 2).min(area.height * 3 / 5);
    let [list, full] =
        Layout::vertical([Constraint::Length(list_height), Constraint::Fill(1)]).areas(area);
    let path = |row: &StackRow| -> Vec<Span<'static>> {
        let mut spans = Vec::new();
        for (i, (runtime, name)) in row.frames.iter().enumerate() {
            if i > 0 {
                spans.push(Span::raw(" > "));
            }
            spans.push(Span::styled(
                name.clone(),
                Style::default().fg(color(*runtime)),
            ));
        }
        spans
    };
    let body: Vec<Row> = rows
        .iter()
        .map(|r| {
            Row::new(vec![
                TableCell::from(percent(r.share)),
                TableCell::from(Line::from(path(r))),
            ])
        })
        .collect();
    let table =
        Table::new(body, [Constraint::Length(6), Constraint::Fill(1)]).header(Row::new(vec![
            Span::styled("share", bold()),
            Span::styled(
                "stack from the caller's frame, glue left out (j/k select)",
                bold(),
            ),
        ]));
    render_table(
        table,
        " stacks through it ".to_string(),
        (selected, rows.len()),
        d.scroll(View::Detail),
        list,
        buf,
    );
    let Some(row) = rows.get(selected) else {
        return;
    };
    Paragraph::new(Line::from(path(row)))
        .wrap(Wrap { trim: false })
        .block(Block::default().borders(Borders::TOP).title(format!(
            " stack {} of {}, in full ",
            selected + 1,
            rows.len()
        )))
        .render(full, buf);
}

/// A labelled sparkline of the newest values that fit, with the newest value and the peak.
fn render_sparkline(
    label: &str,
    values: &[u64],
    show: impl Fn(u64) -> String,
    area: Rect,
    buf: &mut Buffer,
) {
    let [text, chart] =
        Layout::horizontal([Constraint::Length(24), Constraint::Fill(1)]).areas(area);
    let newest = values.last().copied().unwrap_or(0);
    let peak = values.iter().copied().max().unwrap_or(0);
    Paragraph::new(vec![
        Line::from(Span::styled(label.to_string(), bold())),
        Line::from(format!("now  {}", show(newest))),
        Line::from(format!("peak {}", show(peak))),
    ])
    .render(text, buf);
    let shown = &values[values.len().saturating_sub(chart.width as usize)..];
    Sparkline::default()
        .data(shown)
        .max(peak.max(1))
        .style(Style::default().fg(Color::Cyan))
        .render(chart, buf);
}

fn render_help(area: Rect, buf: &mut Buffer) {
    let width = area.width.min(64);
    let height = area.height.min(KEYS.len() as u16 + 2);
    let popup = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    Clear.render(popup, buf);
    let lines: Vec<Line> = KEYS
        .iter()
        .map(|(key, what)| {
            Line::from(vec![
                Span::styled(format!("{key:>13}  "), bold()),
                Span::raw(*what),
            ])
        })
        .collect();
    Paragraph::new(lines)
        .block(Block::bordered().title(" keys "))
        .render(popup, buf);
}

#[cfg(test)]
mod tests {
    use super::*;
    use seam_proto::Mechanism;

    /// An extrapolated rate carries its error where there is room for it; an
    /// exact one, or one too new to have a count, does not.
    #[test]
    fn extrapolated_rates_show_their_error() {
        let mut row = BoundaryRow {
            key: (Runtime::Go, Runtime::Rust, Mechanism::CgoCall),
            through: 0.5,
            glue_cpu: 0.01,
            crossings_per_s: Some(21_105.4),
            crossings_method: CrossingsMethod::Extrapolated,
            crossings: Some(92_000),
            crossings_error: 2_760,
            glue_ns_per_crossing: None,
            glue_ns_error: None,
            off_cpu_ms_per_s: 0.0,
            switches_per_s: 0.0,
            causes: Vec::new(),
        };
        assert_eq!(crossings_rate(&row, true), "~21,105 ±3%");
        assert_eq!(crossings_rate(&row, false), "~21,105");
        row.crossings = Some(0);
        assert_eq!(crossings_rate(&row, true), "~21,105");
        row.crossings_method = CrossingsMethod::Exact;
        assert_eq!(crossings_rate(&row, true), "21,105");
    }

    #[test]
    fn tables_scroll_only_when_the_selection_leaves_the_screen() {
        // (previous offset, selected, visible rows, rows) -> offset
        let cases = [
            ((0, 0, 10, 5), 0),
            ((3, 4, 10, 5), 0),
            ((0, 9, 10, 40), 0),
            ((0, 10, 10, 40), 1),
            ((0, 25, 10, 40), 16),
            ((16, 20, 10, 40), 16),
            ((16, 15, 10, 40), 15),
            ((16, 0, 10, 40), 0),
            ((35, 39, 10, 40), 30),
            ((5, 3, 0, 40), 0),
        ];
        for ((previous, selected, visible, len), want) in cases {
            assert_eq!(
                scroll_offset(previous, selected, visible, len),
                want,
                "{previous} {selected} {visible} {len}"
            );
        }
    }

    #[test]
    fn cells_add_up_to_the_width() {
        let cases: [(usize, &[f64], &[usize]); 4] = [
            (10, &[0.5, 0.5], &[5, 5]),
            (10, &[1.0, 1.0, 1.0], &[4, 3, 3]),
            (7, &[0.0, 1.0], &[0, 7]),
            (5, &[], &[]),
        ];
        for (width, shares, want) in cases {
            assert_eq!(split_cells(width, shares), want, "{width} {shares:?}");
        }
    }
}
