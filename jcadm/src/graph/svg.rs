//! The graph as SVG, laid out by the `layout-rs` crate (a Sugiyama-style layered layout in
//! pure Rust, no Graphviz needed). Each task's group has the class `task` (plus `visited` or
//! `current` with a job), so a page can style it; parallel edges between two tasks are drawn
//! as one with both labels, which the layout needs.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use layout::backends::svg::SVGWriter;
use layout::core::base::Orientation;
use layout::core::color::Color;
use layout::core::style::{LineStyleKind, StyleAttr};
use layout::std_shapes::render::get_shape_size;
use layout::std_shapes::shapes::{Arrow, Element, LineEndKind, ShapeKind};
use layout::topo::layout::VisualGraph;

use super::{EdgeKind, Graph};
use crate::Error;

const FONT: usize = 14;

fn look(line: &str, fill: &str, width: usize) -> StyleAttr {
    StyleAttr::new(Color::fast(line), width, Some(Color::fast(fill)), 5, FONT)
}

/// Renders `g` as an SVG document.
pub fn render(g: &Graph) -> Result<String, Error> {
    let dir = Orientation::TopToBottom;
    let mut vg = VisualGraph::new(dir);
    let mut handles = Vec::with_capacity(g.nodes.len() + 1);
    let title = ShapeKind::new_box(&g.title());
    let title_size = get_shape_size(dir, &title, FONT, false);
    let title_look = StyleAttr::new(Color::fast("white"), 0, None, 0, FONT);
    vg.add_node(Element::create_with_properties(
        title,
        title_look,
        dir,
        title_size,
        "class=\"title\"",
    ));
    for n in &g.nodes {
        let (style, class) = if n.current {
            (look("black", "gold", 3), "task current")
        } else if n.visits > 0 {
            (look("black", "lightblue", 2), "task visited")
        } else {
            (look("black", "white", 1), "task")
        };
        let shape = ShapeKind::new_box(&g.label(n));
        let size = get_shape_size(dir, &shape, FONT, false);
        let props = format!("class=\"{class}\" data-task=\"{}\"", n.index);
        handles.push(vg.add_node(Element::create_with_properties(
            shape, style, dir, size, props,
        )));
    }
    // One arrow per pair of tasks: the layout cannot split two labelled edges of one pair.
    let mut pairs: BTreeMap<(usize, usize), Vec<&super::Edge>> = BTreeMap::new();
    for e in &g.edges {
        pairs.entry((e.from, e.to)).or_default().push(e);
    }
    for ((from, to), es) in pairs {
        let label = es
            .iter()
            .map(|e| e.label.as_str())
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" / ");
        let taken = es.iter().any(|e| e.taken);
        let kind = es[0].kind;
        let line_style = match kind {
            EdgeKind::Catch => LineStyleKind::Dashed,
            EdgeKind::Reaps => LineStyleKind::Dotted,
            EdgeKind::Next | EdgeKind::When => LineStyleKind::Normal,
        };
        let color = match (taken, kind) {
            (true, _) => "blue",
            (false, EdgeKind::Catch) => "red",
            _ => "black",
        };
        let style = StyleAttr::new(Color::fast(color), if taken { 3 } else { 1 }, None, 0, 12);
        // A task looping to itself gets no label: the layout draws self-loops without one.
        let text = if from == to { "" } else { label.as_str() };
        let arrow = Arrow::new(
            LineEndKind::None,
            LineEndKind::Arrow,
            line_style,
            text,
            &style,
            &None,
            &None,
        );
        vg.add_edge(arrow, handles[from], handles[to]);
    }
    let mut svg = SVGWriter::new();
    catch_unwind(AssertUnwindSafe(|| {
        vg.do_it(false, false, false, &mut svg);
    }))
    .map_err(|_| {
        Error::BadInput(format!(
            "the layout of {} version {} failed; use --format dot",
            g.workflow, g.version
        ))
    })?;
    Ok(svg.finalize())
}
