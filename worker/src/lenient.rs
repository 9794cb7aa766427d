//! A pass-through backend that never fails on a message it cannot decode.
//!
//! apalis-amqp decodes every message body as JSON inside the backend stream, and a decoding
//! error ends the worker; the undecodable message is redelivered, ends the next worker, and
//! the whole pool stalls behind it. This wrapper decodes instead, turning an unreadable body
//! into a value the job handler dead-letters like any other permanent failure.

use apalis::prelude::*;
use apalis_amqp::{AmqpBackend, AmqpTask, Config};
use apalis_core::backend::BackendConfig;
use apalis_core::backend::finalize::Ephemeral;
use apalis_core::worker::ext::ack::AcknowledgeLayer;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use std::task::{Context, Poll};

/// A delivered message: the decoded job, or why its body could not be decoded.
#[derive(Debug, Clone)]
pub enum Delivery<T> {
    Job(T),
    Unreadable { body: Vec<u8>, error: String },
}

/// Wraps an [`AmqpBackend`] whose tasks stay raw bytes, decoding them itself.
pub struct LenientBackend<T> {
    inner: AmqpBackend<Delivery<T>>,
    _job: PhantomData<fn() -> T>,
}

impl<T> Clone for LenientBackend<T> {
    fn clone(&self) -> Self {
        LenientBackend { inner: self.inner.clone(), _job: PhantomData }
    }
}

impl<T> LenientBackend<T> {
    pub fn new(inner: AmqpBackend<Delivery<T>>) -> Self {
        LenientBackend { inner, _job: PhantomData }
    }

    pub fn inner_mut(&mut self) -> &mut AmqpBackend<Delivery<T>> {
        &mut self.inner
    }
}

impl<T: DeserializeOwned + Send + 'static> Backend for LenientBackend<T> {
    type Task = Task<Delivery<T>>;
    type Error = apalis_amqp::Error;

    fn poll_ready(&mut self, cx: &mut Context<'_>, worker: &WorkerContext) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx, worker)
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Option<Result<Self::Task, Self::Error>>> {
        self.inner
            .poll_next(cx, worker)
            .map(|next| next.map(|delivered| delivered.map(|task: AmqpTask| task.map_args(decode::<T>))))
    }

    fn poll_close(&mut self, cx: &mut Context<'_>, worker: &WorkerContext) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_close(cx, worker)
    }
}

fn decode<T: DeserializeOwned>(body: Vec<u8>) -> Delivery<T> {
    match serde_json::from_slice::<T>(&body) {
        Ok(job) => Delivery::Job(job),
        Err(e) => Delivery::Unreadable { error: e.to_string(), body },
    }
}

impl<T: Send + 'static> BackendConfig for LenientBackend<T> {
    type Args = Delivery<T>;
    type Id = u64;
    type Kind = Ephemeral;
    type Config = Config;
    type Layer = AcknowledgeLayer<AmqpBackend<Delivery<T>>>;

    fn config(&self) -> &Self::Config {
        self.inner.config()
    }

    fn middleware(&mut self, worker: &mut WorkerContext) -> Self::Layer {
        self.inner.middleware(worker)
    }
}
