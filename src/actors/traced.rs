//! Runs an actor inside its component's span, so every line it logs, and every line of the tasks
//! it spawns through [`spawn`], carries `component=…` without each call site spelling it.
//!
//! The supervisor spawns every child through [`Traced`]; `daemon::run` runs in the supervisor's
//! span.

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use tracing::Instrument;

use crate::health::Component;
use crate::logging::component_span;

/// `actor` with each of its callbacks instrumented by one span of `component`.
pub struct Traced<A> {
    actor: A,
    span: tracing::Span,
}

impl<A> Traced<A> {
    pub fn new(actor: A, component: Component) -> Self {
        Traced { actor, span: component_span(component) }
    }
}

impl<A: Actor> Actor for Traced<A> {
    type Msg = A::Msg;
    type State = A::State;
    type Arguments = A::Arguments;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        self.actor.pre_start(myself, args).instrument(self.span.clone()).await
    }

    async fn post_start(&self, myself: ActorRef<Self::Msg>, state: &mut Self::State) -> Result<(), ActorProcessingErr> {
        self.actor.post_start(myself, state).instrument(self.span.clone()).await
    }

    async fn post_stop(&self, myself: ActorRef<Self::Msg>, state: &mut Self::State) -> Result<(), ActorProcessingErr> {
        self.actor.post_stop(myself, state).instrument(self.span.clone()).await
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        self.actor.handle(myself, message, state).instrument(self.span.clone()).await
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        self.actor.handle_supervisor_evt(myself, event, state).instrument(self.span.clone()).await
    }
}

/// Spawns a task of the calling actor inside its span: the Redis writes, model calls and
/// connections an actor hands to a task log as the actor does.
pub fn spawn<F>(task: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(task.in_current_span())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

    use super::{Traced, spawn};
    use crate::health::Component;

    /// Everything the subscriber writes, line by line.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn lines(&self) -> Vec<String> {
            let bytes = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
            String::from_utf8_lossy(&bytes).lines().map(str::to_owned).collect()
        }
    }

    /// Logs at start, on a message, from a task it spawns, and starts a child of another
    /// component, as the supervisor does.
    struct Chatty;

    impl Actor for Chatty {
        type Msg = RpcReplyPort<()>;
        type State = ();
        type Arguments = Option<Component>;

        async fn pre_start(&self, _: ActorRef<Self::Msg>, child: Option<Component>) -> Result<(), ActorProcessingErr> {
            tracing::warn!("starting");
            if let Some(component) = child {
                Actor::spawn(None, Traced::new(Chatty, component), None).await?;
            }
            Ok(())
        }

        async fn handle(&self, _: ActorRef<Self::Msg>, reply: Self::Msg, _: &mut ()) -> Result<(), ActorProcessingErr> {
            tracing::warn!("handling");
            let _ = spawn(async { tracing::warn!("in a task") }).await;
            let _ = reply.send(());
            Ok(())
        }
    }

    #[tokio::test]
    async fn every_line_of_an_actor_names_its_component_once_at_any_level() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter("warn")
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _default = tracing::subscriber::set_default(subscriber);

        let (actor, _) = Actor::spawn(None, Traced::new(Chatty, Component::Supervisor), Some(Component::Redis))
            .await
            .expect("actor starts");
        ractor::call!(actor, |reply| reply).expect("actor answers");
        actor.stop_and_wait(None, None).await.expect("actor stops");

        let lines = captured.lines();
        let with = |text: &str| lines.iter().filter(|line| line.contains(text)).cloned().collect::<Vec<_>>();
        assert_eq!(with("starting").len(), 2, "{lines:#?}");
        assert_eq!(with("component=supervisor").len(), 3, "{lines:#?}");
        assert_eq!(with("component=redis").len(), 1, "a child names its own component only: {lines:#?}");
        assert!(with("handling")[0].contains("component=supervisor"), "{lines:#?}");
        assert!(with("in a task")[0].contains("component=supervisor"), "{lines:#?}");
    }
}
