//! The actors of the daemon; each file holds one actor. See the crate docs for the tree.
