//! What a graph must be to run (see [`crate::domain::graph::analyse`]): one source, one
//! target, every node on a path from the source to the target, no cycle, no duplicate edge.
//!
//! The plan is a dataflow: every node takes the union of what its incoming edges carry, and
//! passes its output down every outgoing edge, as a copy per edge. Steps come in an order where
//! each node's inputs come before it.

use crate::domain::graph::{Fault, Graph, Node, NodeType};
use crate::domain::run::RunError;
use crate::domain::run::RunErrorCode;

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub source: Node,
    /// Transform and filter nodes, in topological order.
    pub steps: Vec<Node>,
    pub target: Node,
    /// Where each step's rows come from, one entry per incoming edge: [`Input::Source`] or
    /// [`Input::Step`] by index into `steps` (always an earlier one).
    pub inputs: Vec<Vec<Input>>,
    /// Where the target's rows come from.
    pub target_inputs: Vec<Input>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Input {
    Source,
    Step(usize),
}

impl Plan {
    pub fn build(graph: &Graph) -> Result<Plan, RunError> {
        let analysis = graph.analyse();
        if let Some(fault) = analysis.faults.first() {
            let error = RunError::new(RunErrorCode::InvalidGraph, fault.describe(&graph.nodes));
            return Err(match fault.node() {
                Some(i) => error.at_node(&graph.nodes[i].id),
                None => error,
            });
        }
        let (Some(source), Some(target)) = (analysis.source, analysis.target) else {
            return Err(RunError::new(RunErrorCode::InvalidGraph, Fault::Missing(NodeType::Source).describe(&graph.nodes)));
        };
        let mut step_of = vec![None; graph.nodes.len()];
        let mut steps = Vec::new();
        for &i in &analysis.order {
            let node = &graph.nodes[i];
            match node.node_type {
                NodeType::Source | NodeType::Target => {}
                NodeType::Transform | NodeType::Filter => {
                    step_of[i] = Some(steps.len());
                    steps.push(i);
                }
                other => {
                    let message = format!("node type '{}' cannot be executed yet", other.as_str());
                    return Err(RunError::new(RunErrorCode::UnsupportedNode, message).at_node(&node.id));
                }
            }
        }
        let input = |from: usize| if from == source { Input::Source } else { Input::Step(step_of[from].unwrap_or_default()) };
        let inputs = steps.iter().map(|&i| analysis.inputs[i].iter().map(|&from| input(from)).collect()).collect();
        Ok(Plan {
            source: graph.nodes[source].clone(),
            steps: steps.iter().map(|&i| graph.nodes[i].clone()).collect(),
            target: graph.nodes[target].clone(),
            inputs,
            target_inputs: analysis.inputs[target].iter().map(|&from| input(from)).collect(),
        })
    }

    /// How many edges leave the source and each step: a row is copied once per extra edge.
    pub fn fan_out(&self) -> (usize, Vec<usize>) {
        let mut steps = vec![0; self.steps.len()];
        let mut source = 0;
        for input in self.inputs.iter().chain(std::iter::once(&self.target_inputs)).flatten() {
            match input {
                Input::Source => source += 1,
                Input::Step(i) => steps[*i] += 1,
            }
        }
        (source, steps)
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
        assert!(Plan::build(&g).unwrap_err().message.contains("second source"));
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
