"""The fund's list of appointment motives (reference data, editable afterwards)."""

from django.db import migrations

MOTIVES = [
    (
        "at-mp",
        "Accident du travail / maladie professionnelle",
        "Déclarer ou suivre un accident du travail ou une maladie professionnelle : "
        "reconnaissance, soins pris en charge, indemnités, rente.",
        30,
    ),
    (
        "arret-travail-ij",
        "Arrêt de travail (nouvelle demande ou en cours) / indemnités journalières",
        "Comprendre le calcul et le versement de vos indemnités journalières, suivre un "
        "arrêt de travail en cours ou signaler une reprise.",
        20,
    ),
    (
        "artistes-auteurs",
        "Artistes / auteurs",
        "Vos droits aux prestations en tant qu’artiste-auteur : ouverture des droits, "
        "indemnités, justificatifs de revenus.",
        30,
    ),
    (
        "maternite-paternite",
        "Congé maternité / congé paternité",
        "Préparer votre congé maternité, paternité ou d’accueil de l’enfant : durée, "
        "démarches et indemnisation.",
        20,
    ),
    (
        "capital-deces",
        "Demande de capital décès",
        "Demander le capital décès après la disparition d’un proche assuré : qui peut le "
        "demander, pièces à fournir, délais.",
        30,
    ),
    (
        "css",
        "Demande de Complémentaire santé solidaire (CSS)",
        "Savoir si vous avez droit à la Complémentaire santé solidaire et être aidé pour "
        "la demander ou la renouveler.",
        30,
    ),
    (
        "pension-invalidite",
        "Demande de pension d’invalidité",
        "Les conditions, la demande et le calcul d’une pension d’invalidité.",
        30,
    ),
    (
        "cures-thermales",
        "Demande ou conditions de prise en charge des cures thermales",
        "La prise en charge d’une cure thermale prescrite : formulaire, frais de séjour "
        "et de transport, conditions de ressources.",
        15,
    ),
    (
        "soins-etranger",
        "Conditions de prise en charge et remboursements de soins à l’étranger",
        "Se faire soigner ou rembourser des soins reçus dans un autre pays : carte "
        "européenne, formulaires, remboursements.",
        20,
    ),
    (
        "frontaliers-suisses",
        "Frontaliers suisses",
        "Votre assurance maladie lorsque vous travaillez en Suisse et résidez en France : "
        "droit d’option, affiliation, remboursements.",
        30,
    ),
]


def create(apps, schema_editor):
    Motive = apps.get_model("appointments", "Motive")
    for position, (code, label, description, minutes) in enumerate(MOTIVES):
        Motive.objects.update_or_create(
            code=code,
            defaults={
                "label": label,
                "description": description,
                "duration_minutes": minutes,
                "position": position,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("appointments", "0001_initial")]

    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
