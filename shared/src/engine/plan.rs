//! What a graph must be to run: one source, one target, every node on a path from the source to
//! the target, no cycle. The plan is the nodes between source and target in execution order.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::domain::graph::{Graph, Node, NodeType};
use crate::domain::run::RunError;

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub source: Node,
    /// Transform and filter nodes, in topological order.
    pub steps: Vec<Node>,
    pub target: Node,
}

fn invalid(message: impl Into<String>) -> RunError {
    RunError::new("INVALID_GRAPH", message)
}

impl Plan {
    pub fn build(graph: &Graph) -> Result<Plan, RunError> {
        let one = |kind: NodeType, name: &str| -> Result<&Node, RunError> {
            let found: Vec<&Node> = graph.nodes.iter().filter(|n| n.node_type == kind).collect();
            match found.as_slice() {
                [one] => Ok(one),
                [] => Err(invalid(format!("the graph has no {name} node"))),
                _ => Err(invalid(format!("the graph has {} {name} nodes; exactly one is needed", found.len()))),
            }
        };
        let (source, target) = (one(NodeType::Source, "source")?, one(NodeType::Target, "target")?);

        let mut out: HashMap<&str, Vec<&str>> = HashMap::new();
        let mut back: HashMap<&str, Vec<&str>> = HashMap::new();
        let mut indegree: HashMap<&str, usize> = graph.nodes.iter().map(|n| (n.id.as_str(), 0)).collect();
        for e in &graph.edges {
            out.entry(&e.source).or_default().push(&e.target);
            back.entry(&e.target).or_default().push(&e.source);
            *indegree.entry(&e.target).or_default() += 1;
        }
        let reach = |from: &str, adj: &HashMap<&str, Vec<&str>>| -> HashSet<String> {
            let mut seen = HashSet::from([from.to_string()]);
            let mut queue = VecDeque::from([from.to_string()]);
            while let Some(n) = queue.pop_front() {
                for next in adj.get(n.as_str()).into_iter().flatten() {
                    if seen.insert(next.to_string()) {
                        queue.push_back(next.to_string());
                    }
                }
            }
            seen
        };
        let (from_source, to_target) = (reach(&source.id, &out), reach(&target.id, &back));
        for node in &graph.nodes {
            if !from_source.contains(&node.id) {
                return Err(invalid(format!("node '{}' is not reachable from the source", node.label_or_id())).at_node(&node.id));
            }
            if !to_target.contains(&node.id) {
                return Err(invalid(format!("node '{}' does not lead to the target", node.label_or_id())).at_node(&node.id));
            }
        }

        // Kahn's algorithm, taking ready nodes in the graph's own order for a stable plan.
        let mut order = Vec::with_capacity(graph.nodes.len());
        let mut ready: VecDeque<&Node> = graph.nodes.iter().filter(|n| indegree[n.id.as_str()] == 0).collect();
        while let Some(n) = ready.pop_front() {
            order.push(n);
            for t in out.get(n.id.as_str()).into_iter().flatten() {
                if let Some(d) = indegree.get_mut(t) {
                    *d -= 1;
                    if *d == 0 {
                        ready.extend(graph.nodes.iter().filter(|m| m.id == *t));
                    }
                }
            }
        }
        if order.len() != graph.nodes.len() {
            return Err(invalid("the graph has a cycle"));
        }
        let mut steps = Vec::new();
        for n in order {
            match n.node_type {
                NodeType::Source | NodeType::Target => {}
                NodeType::Transform | NodeType::Filter => steps.push(n.clone()),
                other => {
                    return Err(
                        RunError::new("UNSUPPORTED_NODE", format!("node type '{}' cannot be executed yet", other.as_str())).at_node(&n.id)
                    );
                }
            }
        }
        Ok(Plan { source: source.clone(), steps, target: target.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::graph::Edge;

    fn node(id: &str, t: NodeType) -> Node {
        Node { id: id.into(), node_type: t, label: String::new(), config: Default::default(), position: None }
    }

    fn graph(nodes: &[(&str, NodeType)], edges: &[(&str, &str)]) -> Graph {
        Graph {
            nodes: nodes.iter().map(|(id, t)| node(id, *t)).collect(),
            edges: edges
                .iter()
                .map(|(s, t)| Edge { id: format!("{s}-{t}"), source: s.to_string(), target: t.to_string(), label: None })
                .collect(),
        }
    }

    use NodeType::*;

    #[test]
    fn a_chain_plans_in_order() {
        let g = graph(&[("t", Target), ("f", Filter), ("s", Source), ("x", Transform)], &[("s", "x"), ("x", "f"), ("f", "t")]);
        let plan = Plan::build(&g).unwrap();
        assert_eq!(plan.steps.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(), ["x", "f"]);
        assert_eq!((plan.source.id.as_str(), plan.target.id.as_str()), ("s", "t"));
    }

    #[test]
    fn source_and_target_must_be_unique() {
        assert!(Plan::build(&graph(&[("t", Target)], &[])).unwrap_err().message.contains("no source"));
        let g = graph(&[("s", Source), ("s2", Source), ("t", Target)], &[("s", "t"), ("s2", "t")]);
        assert!(Plan::build(&g).unwrap_err().message.contains("2 source"));
        assert!(Plan::build(&graph(&[("s", Source)], &[])).unwrap_err().message.contains("no target"));
    }

    #[test]
    fn every_node_lies_between_source_and_target() {
        let g = graph(&[("s", Source), ("x", Transform), ("t", Target)], &[("s", "t")]);
        let e = Plan::build(&g).unwrap_err();
        assert_eq!((e.code.as_str(), e.node_id.as_deref()), ("INVALID_GRAPH", Some("x")));
        let g = graph(&[("s", Source), ("x", Transform), ("t", Target)], &[("s", "t"), ("s", "x")]);
        assert!(Plan::build(&g).unwrap_err().message.contains("does not lead to the target"));
    }

    #[test]
    fn cycles_and_unsupported_nodes_fail() {
        let g =
            graph(&[("s", Source), ("a", Transform), ("b", Transform), ("t", Target)], &[("s", "a"), ("a", "b"), ("b", "a"), ("b", "t")]);
        assert!(Plan::build(&g).unwrap_err().message.contains("cycle"));
        let g = graph(&[("s", Source), ("j", Join), ("t", Target)], &[("s", "j"), ("j", "t")]);
        let e = Plan::build(&g).unwrap_err();
        assert_eq!((e.code.as_str(), e.node_id.as_deref()), ("UNSUPPORTED_NODE", Some("j")));
        assert!(e.message.contains("'join'"));
    }
}
