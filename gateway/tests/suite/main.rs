//! The gateway's integration tests, in one binary: each module is one area
//! of the running application, started in-process (`common`) on both
//! backends, with the banks' emulators (`emulators`) where money moves.
//!
//! - `api`: the seller API's shape, validation and errors;
//! - `buying`: reserves, holds, orders and their lifecycles;
//! - `callbacks`: sandbox callbacks, settlement and reconciliation;
//! - `checkout`: checkout sessions and the signed widget parameters;
//! - `details`: buyer details and delivery asked at checkout, kept with consent;
//! - `edits`: live offers changed while viewers buy, scheduled offers, lots archived;
//! - `faults`: the servers under a node going away and coming back;
//! - `fulfilment`: a paid order's way to the buyer, moved by the seller;
//! - `mail`: buyers' emails through a real SMTP server, templates, opting out;
//! - `modes`: live and test modes kept apart;
//! - `banks`, `tbank`: paying, refunding and refusing forgeries at each bank;
//! - `webhooks`: seller webhooks, checked with the official library;
//! - `retailcrm`: the RetailCRM connector against an emulator of its API v5;
//! - `realtime`: the viewer protocol with the official SDKs;
//! - `pages`: the viewer and checkout pages in headless Chromium;
//! - `nodes`: two `haul` processes on one database and Redis;
//! - `ops`: health, metrics, configuration and the command line.

#[macro_use]
mod common;
mod emulators;

mod api;
mod banks;
mod buying;
mod callbacks;
mod checkout;
mod console;
mod details;
mod edits;
mod faults;
mod fulfilment;
mod keys;
mod mail;
mod modes;
mod nodes;
mod ops;
mod orders;
mod pages;
mod realtime;
mod retailcrm;
mod tbank;
mod webhooks;
