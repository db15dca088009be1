"""Alerting: rules over snapshot values, the alert state machine, actions, drift events and sinks.

Pure apart from ``sinks``. Per evaluation ``monitor.pipeline.Pipeline.evaluate`` does, in order::

    transitions = evaluator.evaluate(snapshot, promotions, now)        # pure (alerts.state)
    events = [build_drift_event(t.alert) for t in transitions ...]    # pure (alerts.drift_event)
    # outside the pipeline's lock, the I/O:
    store.alerts.save_alert_states(db, states, transitions)           # restored by load_alert_states
    store.alerts.add_drift_events(db, events, fingerprints, now)      # the outbox
    pipeline.publish_outbox(db, publisher, now)                       # outbox -> sinks.kafka, until acked
    alertmanager.push(evaluator.notifiable(now), now)                 # sinks.alertmanager (optional)

The sinks only publish what they are handed. ``store.alerts`` imports the alert types it persists;
nothing in ``alerts`` imports ``store``.
"""
