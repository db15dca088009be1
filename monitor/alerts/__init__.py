"""Alerting: rules over snapshot values, the alert state machine, actions, drift events and sinks.

Per evaluation the composition root calls, in order::

    transitions = evaluator.evaluate(snapshot, promotions, now)        # pure
    store.alerts.save_alert_states(engine, evaluator.states, now)      # restore with load_alert_states
    store.alerts.add_drift_events(engine, [build_drift_event(t.alert) ...], ...)  # the outbox
    pipeline.publish_outbox(engine, publisher, now)                   # outbox -> Kafka, retried until acked
    alertmanager.push(evaluator.notifiable(now), now)                 # optional direct push
    collector.update(snapshot, evaluator.states)                      # metrics at scrape time
"""
