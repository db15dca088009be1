"""Alerting: rules over snapshot values, the alert state machine, actions, drift events and sinks.

Pure apart from ``sinks``. Per evaluation ``monitor.pipeline.Pipeline.evaluate`` does, in order::

    transitions = evaluator.evaluate(snapshot, promotions, now)        # pure (alerts.state)
    events = [build_drift_event(t.alert) for t in transitions ...]    # pure (alerts.drift_event)
    # outside the pipeline's lock, the I/O:
    store.evaluation.save_evaluation(db, states, transitions,         # one transaction: alert states
                                     incidents, events, fingerprints, now)  # (restored by load_alert_states),
                                                                      # incidents and the outbox
    pipeline.publish_outbox(db, publisher, now)                       # outbox -> sinks.kafka, until acked
    alertmanager.push(evaluator.notifiable(now), now)                 # sinks.alertmanager (optional)

The sinks only publish what they are handed. ``store.alerts`` imports the alert types it persists;
nothing in ``alerts`` imports ``store``.
"""
