from django.urls import path

from .views import account, agenda, auth, demo, pages, payments, signup, space

app_name = "www"

urlpatterns = [
    path("", pages.home, name="home"),
    path("connexion/", auth.login_view, name="login"),
    path("deconnexion/", auth.logout_view, name="logout"),
    path("compte/creer/", signup.identity, name="signup"),
    path("compte/creer/identifiants/", signup.credentials, name="signup_credentials"),
    path("compte/creer/envoye/", signup.sent, name="signup_sent"),
    path("compte/confirmer/", signup.confirm, name="signup_confirm"),
    path("compte/confirmer/<str:token>", signup.confirm_link, name="signup_confirm_link"),
    path("mon-espace/", space.home, name="space"),
    path("paiements/", payments.payments, name="payments"),
    path("paiements/export.csv", payments.export_csv, name="payments_export"),
    path("paiements/ligne/<str:line_id>/", payments.line_detail, name="payment_line"),
    path("paiements/releve/", payments.statement_choose, name="payment_statement_choose"),
    path("paiements/releve/<str:month>.pdf", payments.statement_pdf, name="payment_statement"),
    path(
        "paiements/attestation-droits.pdf",
        payments.entitlement_certificate_pdf,
        name="entitlement_certificate",
    ),
    path("indemnites/", payments.allowances, name="allowances"),
    path(
        "indemnites/attestation.pdf",
        payments.allowance_certificate_pdf,
        name="allowance_certificate",
    ),
    path("agenda/", agenda.agenda, name="agenda"),
    path("agenda/nouveau/", agenda.new, name="agenda_new"),
    path("agenda/nouveau/type/", agenda.new_channel, name="agenda_new_channel"),
    path("agenda/nouveau/lieu/", agenda.new_site, name="agenda_new_site"),
    path("agenda/nouveau/mode/", agenda.new_mode, name="agenda_new_mode"),
    path("agenda/nouveau/creneau/", agenda.new_slot, name="agenda_new_slot"),
    path("agenda/nouveau/confirmer/", agenda.new_confirm, name="agenda_new_confirm"),
    path("agenda/<str:public_id>/confirmation/", agenda.confirmed, name="agenda_confirmed"),
    path("agenda/<str:public_id>/rendez-vous.ics", agenda.ics_download, name="agenda_ics"),
    path("agenda/<str:public_id>/annuler/", agenda.cancel, name="agenda_cancel"),
    path("agenda/<str:public_id>/deplacer/", agenda.reschedule, name="agenda_reschedule"),
    path(
        "agenda/<str:public_id>/deplacer/confirmer/",
        agenda.reschedule_confirm,
        name="agenda_reschedule_confirm",
    ),
    path("mon-compte/", account.overview, name="account"),
    path("mon-compte/notifications/", account.notifications, name="account_notifications"),
    path("mon-compte/communication/", account.communication, name="account_communication"),
    path("mon-compte/courriel/", account.email_change, name="account_email"),
    path(
        "mon-compte/courriel/confirmer/", account.email_change_confirm, name="account_email_confirm"
    ),
    path(
        "mon-compte/courriel/confirmer/<str:token>",
        account.email_change_link,
        name="account_email_confirm_link",
    ),
    path("mon-compte/mobile/", account.mobile_change, name="account_mobile"),
    path("mon-compte/mobile/code/", account.mobile_change_code, name="account_mobile_code"),
    path(
        "mon-compte/mobile/nouveau-code/",
        account.mobile_change_resend,
        name="account_mobile_resend",
    ),
    path("mon-compte/mot-de-passe/", account.password_change, name="account_password"),
    path(
        "mon-compte/deconnexion-partout/",
        account.logout_everywhere,
        name="account_logout_everywhere",
    ),
    path("accessibilite/", pages.accessibility, name="accessibility"),
    path("mentions-legales/", pages.legal, name="legal"),
    path("donnees-personnelles/", pages.privacy, name="privacy"),
    path("demo/boite-mail/", demo.mailbox, name="demo_mailbox"),
    path("demo/boite-mail/<int:message_id>/", demo.message, name="demo_message"),
    path(
        "demo/boite-mail/<int:message_id>/piece-jointe",
        demo.attachment,
        name="demo_message_attachment",
    ),
]
